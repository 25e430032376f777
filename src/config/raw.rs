//! What a configuration file says, before defaults are filled in.
//!
//! Every value is a small type that checks itself while it is deserialized, so a bad
//! value fails with the span of that value and its expected form. Every key is
//! optional: a missing key keeps the default (see `defaults`), and a list that is
//! present replaces the default list. Checks that involve two keys run afterwards, in
//! `RawConfig::overlay`, and carry the span of the key they blame.

use std::fmt;
use std::marker::PhantomData;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer, Unexpected, Visitor};
use toml::Spanned;

use super::url::{URL_FORM, parse_http_url};
use super::{Config, FdPathRule, FileAction, FileRule, LogFormat, Method, notify, signal};
use crate::units::{DURATION_FORM, format_duration, parse_duration, parse_size};

/// A check on two keys that failed, with the span of the key to blame.
#[derive(Debug)]
pub(super) struct CrossError {
    pub span: Range<usize>,
    pub message: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "a configuration file of TOML tables such as [target] and [health]"
)]
pub(super) struct RawConfig {
    target: RawTarget,
    health: RawHealth,
    fds: RawFds,
    memory: RawMemory,
    // Spanned: a missing key is reported at its entry.
    files: Option<Vec<Spanned<RawFile>>>,
    restart: RawRestart,
    log: RawLog,
    state: RawState,
    metrics: RawMetrics,
    notify: RawNotify,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields, expecting = "the [target] table")]
struct RawTarget {
    pidfile: Option<OptPathText>,
    port: Option<OptPort>,
    #[serde(rename = "match")]
    match_: Option<OptText>,
    startup_grace: Option<Dur>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields, expecting = "the [health] table")]
struct RawHealth {
    url: Option<UrlText>,
    // Spanned: together they bound how long one probe may take.
    timeout: Option<Spanned<PositiveDur>>,
    attempts: Option<Spanned<Count>>,
    interval: Option<Spanned<Dur>>,
    expect_status: Option<StatusList>,
    expect_body: Option<OptText>,
    insecure_tls: Option<bool>,
    ca_file: Option<OptPathText>,
    busy_fields: Option<Vec<Text>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields, expecting = "the [fds] table")]
struct RawFds {
    max: Option<FdCount>,
    // Spanned: the two shares are checked against each other after parsing.
    max_percent: Option<Spanned<Percent>>,
    warn_percent: Option<Spanned<Percent>>,
    // Spanned: a missing key is reported at its entry.
    paths: Option<Vec<Spanned<RawFdPath>>>,
    trend_window: Option<PositiveDur>,
    trend_horizon: Option<Dur>,
    trend_restart: Option<bool>,
    budget: Option<Spanned<RawBudget>>,
}

/// `[fds.budget]`: `field` names the /health number; without it there is no budget.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields, expecting = "the [fds.budget] table")]
struct RawBudget {
    base: Option<u64>,
    per: Option<u64>,
    field: Option<OptText>,
    factor: Option<f64>,
}

/// One `[[fds.paths]]` entry: both keys are required (a pattern without a limit means
/// nothing), checked in `overlay` so that the message can show the expected form.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields, expecting = "a [[fds.paths]] entry")]
struct RawFdPath {
    pattern: Option<Text>,
    max: Option<FdCount>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields, expecting = "the [memory] table")]
struct RawMemory {
    max_rss: Option<OptSize>,
}

/// One `[[files]]` entry: `path` and `max_size` are required, `action` defaults to
/// "warn", the harmless choice.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields, expecting = "a [[files]] entry")]
struct RawFile {
    path: Option<PathText>,
    max_size: Option<PositiveSize>,
    action: Option<FileAction>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields, expecting = "the [restart] table")]
struct RawRestart {
    // Spanned: `method = "command"` needs a `command`.
    method: Option<Spanned<Method>>,
    label: Option<OptText>,
    unit: Option<OptText>,
    program: Option<OptText>,
    service_dir: Option<OptPathText>,
    command: Option<OptText>,
    start_command: Option<OptText>,
    command_timeout: Option<PositiveDur>,
    stop_timeout: Option<PositiveDur>,
    verify_timeout: Option<PositiveDur>,
    max_restarts: Option<Count>,
    window: Option<PositiveDur>,
    kill_orphans: Option<bool>,
    pre_kill_signal: Option<Signal>,
    max_defer: Option<Dur>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields, expecting = "the [log] table")]
struct RawLog {
    file: Option<OptPathText>,
    format: Option<LogFormat>,
    syslog: Option<bool>,
    max_size: Option<PositiveSize>,
    heartbeat: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields, expecting = "the [state] table")]
struct RawState {
    dir: Option<PathText>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields, expecting = "the [metrics] table")]
struct RawMetrics {
    textfile: Option<PromPath>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields, expecting = "the [notify] table")]
struct RawNotify {
    command: Option<OptText>,
    webhook: Option<NotifyUrl>,
    events: Option<Vec<NotifyEvent>>,
    heartbeat_url: Option<NotifyUrl>,
    timeout: Option<NotifyTimeout>,
}

impl RawConfig {
    /// Writes every key the file set over `cfg` (the defaults), then runs the checks
    /// that involve two keys.
    pub(super) fn overlay(self, cfg: &mut Config, home: Option<&Path>) -> Result<(), CrossError> {
        self.target.overlay(cfg, home);
        self.health.overlay(cfg, home)?;
        self.fds.overlay(cfg)?;
        set(&mut cfg.memory.max_rss, self.memory.max_rss.map(|v| v.0));
        if let Some(files) = self.files {
            cfg.files = files
                .into_iter()
                .map(|f| RawFile::into_rule(f, home))
                .collect::<Result<_, _>>()?;
        }
        self.restart.overlay(cfg, home)?;
        self.log.overlay(cfg, home);
        set(
            &mut cfg.state.dir,
            self.state.dir.map(|d| expand_tilde(&d.0, home)),
        );
        set(
            &mut cfg.metrics.textfile,
            self.metrics.textfile.map(|p| p.0.expand(home)),
        );
        self.notify.overlay(cfg);
        Ok(())
    }
}

impl RawTarget {
    fn overlay(self, cfg: &mut Config, home: Option<&Path>) {
        let t = &mut cfg.target;
        set(&mut t.pidfile, self.pidfile.map(|p| p.expand(home)));
        set(&mut t.port, self.port.map(|p| p.0));
        set(&mut t.match_, self.match_.map(|m| m.0));
        set(&mut t.startup_grace, self.startup_grace.map(|d| d.0));
    }
}

/// The longest a health check may take, all attempts and pauses included: far more than
/// a run every minute can use, and a bound that keeps absurd values from making a run
/// that never ends.
const MAX_PROBE_TIME: Duration = Duration::from_secs(3600);

impl RawHealth {
    fn overlay(self, cfg: &mut Config, home: Option<&Path>) -> Result<(), CrossError> {
        let h = &mut cfg.health;
        // Blame the first of the three the file set.
        let span = [
            self.attempts.as_ref().map(Spanned::span),
            self.timeout.as_ref().map(Spanned::span),
            self.interval.as_ref().map(Spanned::span),
        ]
        .into_iter()
        .flatten()
        .next();
        set(&mut h.url, self.url.map(|u| u.0));
        set(&mut h.timeout, self.timeout.map(|d| d.into_inner().0));
        set(&mut h.attempts, self.attempts.map(|n| n.into_inner().0));
        set(&mut h.interval, self.interval.map(|d| d.into_inner().0));
        set(&mut h.expect_status, self.expect_status.map(|s| s.0));
        set(&mut h.expect_body, self.expect_body.map(|b| b.0));
        set(&mut h.insecure_tls, self.insecure_tls);
        // The file itself is read when the configuration is loaded (src/config/tls.rs):
        // parsing stays free of I/O.
        set(&mut h.ca_file, self.ca_file.map(|p| p.expand(home)));
        set(
            &mut h.busy_fields,
            self.busy_fields
                .map(|fields| fields.into_iter().map(|f| f.0).collect()),
        );
        let probe = h
            .timeout
            .saturating_mul(h.attempts)
            .saturating_add(h.interval.saturating_mul(h.attempts.saturating_sub(1)));
        match span {
            Some(span) if probe > MAX_PROBE_TIME => Err(CrossError {
                span,
                message: format!(
                    "health.attempts × timeout + (attempts − 1) × interval comes to {}: \
                     expected at most 1h (e.g. attempts = 3, timeout = \"5s\", \
                     interval = \"2s\")",
                    format_duration(probe)
                ),
            }),
            _ => Ok(()),
        }
    }
}

impl RawFds {
    fn overlay(self, cfg: &mut Config) -> Result<(), CrossError> {
        let f = &mut cfg.fds;
        set(&mut f.max, self.max.map(|n| n.0));
        if let Some(paths) = self.paths {
            f.paths = paths
                .into_iter()
                .map(RawFdPath::into_rule)
                .collect::<Result<_, _>>()?;
        }
        set(&mut f.trend_window, self.trend_window.map(|d| d.0));
        set(&mut f.trend_horizon, self.trend_horizon.map(|d| d.0));
        set(&mut f.trend_restart, self.trend_restart);
        if let Some(budget) = self.budget {
            f.budget = RawBudget::into_budget(budget)?;
        }
        let max_span = self.max_percent.as_ref().map(Spanned::span);
        let warn_span = self.warn_percent.as_ref().map(Spanned::span);
        set(
            &mut f.max_percent,
            self.max_percent.map(|p| p.into_inner().0),
        );
        set(
            &mut f.warn_percent,
            self.warn_percent.map(|p| p.into_inner().0),
        );
        if f.warn_percent <= f.max_percent {
            return Ok(());
        }
        // Blame the key the file set; the other one is a default.
        match warn_span.or(max_span) {
            Some(span) => Err(CrossError {
                span,
                message: format!(
                    "fds.warn_percent ({}) is above fds.max_percent ({}): expected a \
                     warning share at or below the restart share",
                    f.warn_percent, f.max_percent
                ),
            }),
            // Unreachable with valid defaults; nothing in the file to point at.
            None => Ok(()),
        }
    }
}

impl RawRestart {
    fn overlay(self, cfg: &mut Config, home: Option<&Path>) -> Result<(), CrossError> {
        let r = &mut cfg.restart;
        let method_span = self.method.as_ref().map(Spanned::span);
        set(&mut r.method, self.method.map(|m| *m.get_ref()));
        set(&mut r.label, self.label.map(|v| v.0));
        set(&mut r.unit, self.unit.map(|v| v.0));
        set(&mut r.program, self.program.map(|v| v.0));
        set(&mut r.service_dir, self.service_dir.map(|p| p.expand(home)));
        set(&mut r.command, self.command.map(|v| v.0));
        set(&mut r.start_command, self.start_command.map(|v| v.0));
        set(&mut r.command_timeout, self.command_timeout.map(|d| d.0));
        set(&mut r.stop_timeout, self.stop_timeout.map(|d| d.0));
        set(&mut r.verify_timeout, self.verify_timeout.map(|d| d.0));
        set(&mut r.max_restarts, self.max_restarts.map(|n| n.0));
        set(&mut r.window, self.window.map(|d| d.0));
        set(&mut r.kill_orphans, self.kill_orphans);
        set(&mut r.pre_kill_signal, self.pre_kill_signal.map(|s| s.0));
        set(&mut r.max_defer, self.max_defer.map(|d| d.0));
        match method_span {
            Some(span) if r.method == Method::Command && r.command.is_none() => Err(CrossError {
                span,
                message: "method = \"command\" needs restart.command: expected a shell \
                          command such as command = \"sudo systemctl restart hermes-webui\""
                    .to_owned(),
            }),
            _ => Ok(()),
        }
    }
}

impl RawLog {
    fn overlay(self, cfg: &mut Config, home: Option<&Path>) {
        let l = &mut cfg.log;
        set(&mut l.file, self.file.map(|p| p.expand(home)));
        set(&mut l.format, self.format);
        set(&mut l.syslog, self.syslog);
        set(&mut l.max_size, self.max_size.map(|s| s.0));
        set(&mut l.heartbeat, self.heartbeat);
    }
}

impl RawNotify {
    fn overlay(self, cfg: &mut Config) {
        let n = &mut cfg.notify;
        set(&mut n.command, self.command.map(|v| v.0));
        set(&mut n.webhook, self.webhook.map(|v| v.0));
        set(
            &mut n.events,
            self.events
                .map(|names| names.into_iter().map(|e| e.0).collect()),
        );
        set(&mut n.heartbeat_url, self.heartbeat_url.map(|v| v.0));
        set(&mut n.timeout, self.timeout.map(|d| d.0));
    }
}

impl RawBudget {
    fn into_budget(entry: Spanned<Self>) -> Result<Option<super::FdBudget>, CrossError> {
        let span = entry.span();
        let raw = entry.into_inner();
        let Some(field) = raw.field.and_then(|f| f.0) else {
            return Ok(None);
        };
        let factor = raw.factor.unwrap_or(2.0);
        if !(factor.is_finite() && factor >= 1.0) {
            return Err(CrossError {
                span,
                message: format!(
                    "fds.budget.factor = {factor}: expected a number of at least 1.0, \
                     e.g. factor = 2.0 (warn above twice the expected FDs)"
                ),
            });
        }
        if raw.base.unwrap_or(0) == 0 && raw.per.unwrap_or(0) == 0 {
            return Err(CrossError {
                span,
                message: "fds.budget: base and per are both 0: expected FDs = base + per × \
                          the /health field, e.g. base = 40 and per = 3"
                    .to_owned(),
            });
        }
        Ok(Some(super::FdBudget {
            base: raw.base.unwrap_or(0),
            per: raw.per.unwrap_or(0),
            field,
            factor,
        }))
    }
}

impl RawFdPath {
    fn into_rule(entry: Spanned<Self>) -> Result<FdPathRule, CrossError> {
        let span = entry.span();
        let missing = |key: &str| CrossError {
            span: span.clone(),
            message: format!(
                "fds.paths: this entry has no {key}: expected both keys, e.g. \
                 pattern = \"state.db\" and max = 200"
            ),
        };
        let raw = entry.into_inner();
        Ok(FdPathRule {
            pattern: raw.pattern.ok_or_else(|| missing("pattern"))?.0,
            max: raw.max.ok_or_else(|| missing("max"))?.0,
        })
    }
}

impl RawFile {
    fn into_rule(entry: Spanned<Self>, home: Option<&Path>) -> Result<FileRule, CrossError> {
        let span = entry.span();
        let missing = |key: &str| CrossError {
            span: span.clone(),
            message: format!(
                "files: this entry has no {key}: expected path and max_size, e.g. \
                 path = \"~/.hermes/state.db-wal\" and max_size = \"1GiB\""
            ),
        };
        let raw = entry.into_inner();
        let path = raw.path.ok_or_else(|| missing("path"))?;
        Ok(FileRule {
            path: expand_tilde(&path.0, home),
            max_size: raw.max_size.ok_or_else(|| missing("max_size"))?.0,
            action: raw.action.unwrap_or(FileAction::Warn),
        })
    }
}

/// Overwrites a default with the value the file set, if any.
fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *slot = value;
    }
}

/// `~` and `~/rest` become `$HOME` and `$HOME/rest`. Without a home directory the path
/// is kept as written (see `Config::unexpanded_tilde`); `~user` is not supported and
/// kept as written too.
pub(super) fn expand_tilde(path: &str, home: Option<&Path>) -> PathBuf {
    match (path, home) {
        ("~", Some(home)) => home.to_path_buf(),
        (p, Some(home)) if p.starts_with("~/") => home.join(p[2..].trim_start_matches('/')),
        (p, _) => PathBuf::from(p),
    }
}

// ---------------------------------------------------------------------------------
// Self-checking values.
// ---------------------------------------------------------------------------------

/// A configuration value written as a TOML string or integer. Returning `None` means
/// "wrong type": serde then says which type was found and what was expected.
trait Scalar: Sized {
    /// The expected form, as in "invalid type: string "x", expected EXPECTING".
    const EXPECTING: &'static str;

    fn from_text(_text: &str) -> Option<Result<Self, String>> {
        None
    }

    fn from_int(_n: i64) -> Option<Result<Self, String>> {
        None
    }
}

struct ScalarVisitor<T>(PhantomData<T>);

impl<T: Scalar> Visitor<'_> for ScalarVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(T::EXPECTING)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        match T::from_text(v) {
            Some(result) => result.map_err(E::custom),
            None => Err(E::invalid_type(Unexpected::Str(v), &self)),
        }
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        match T::from_int(v) {
            Some(result) => result.map_err(E::custom),
            None => Err(E::invalid_type(Unexpected::Signed(v), &self)),
        }
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        match i64::try_from(v) {
            Ok(v) => self.visit_i64(v),
            Err(_) => Err(E::invalid_value(Unexpected::Unsigned(v), &self)),
        }
    }
}

/// Implements `Deserialize` through `Scalar` for each listed type.
macro_rules! deserialize_scalar {
    ($($ty:ty),* $(,)?) => {$(
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer.deserialize_any(ScalarVisitor::<$ty>(PhantomData))
            }
        }
    )*};
}

deserialize_scalar!(
    Dur,
    PositiveDur,
    PositiveSize,
    OptSize,
    Count,
    FdCount,
    Percent,
    OptPort,
    Status,
    UrlText,
    Text,
    OptText,
    PathText,
    OptPathText,
    PromPath,
    Signal,
    Method,
    FileAction,
    LogFormat,
    NotifyUrl,
    NotifyEvent,
    NotifyTimeout,
);

/// Any duration, zero included (`startup_grace`, `interval`).
#[derive(Debug)]
struct Dur(Duration);

impl Scalar for Dur {
    const EXPECTING: &'static str = DURATION_FORM;

    fn from_text(text: &str) -> Option<Result<Self, String>> {
        Some(parse_duration(text).map(Dur))
    }

    fn from_int(n: i64) -> Option<Result<Self, String>> {
        Some(Err(duration_without_unit(n)))
    }
}

/// A timeout or window: zero would make every check fail or every guard useless.
#[derive(Debug)]
struct PositiveDur(Duration);

impl Scalar for PositiveDur {
    const EXPECTING: &'static str =
        r#"a duration greater than zero such as "500ms", "5s", "2m" or "1h""#;

    fn from_text(text: &str) -> Option<Result<Self, String>> {
        Some(match parse_duration(text) {
            Ok(d) if d.is_zero() => Err(format!("expected {}, found {text:?}", Self::EXPECTING)),
            other => other.map(PositiveDur),
        })
    }

    fn from_int(n: i64) -> Option<Result<Self, String>> {
        Some(Err(duration_without_unit(n)))
    }
}

fn duration_without_unit(n: i64) -> String {
    format!("a duration needs a unit: expected {DURATION_FORM}, found {n}")
}

/// A size limit that must be set (`files.max_size`, `log.max_size`).
#[derive(Debug)]
struct PositiveSize(u64);

impl Scalar for PositiveSize {
    const EXPECTING: &'static str =
        r#"a size greater than zero such as "512KiB", "10MiB", "1GiB" or a number of bytes"#;

    fn from_text(text: &str) -> Option<Result<Self, String>> {
        Some(match parse_size(text) {
            Ok(0) => Err(format!("expected {}, found {text:?}", Self::EXPECTING)),
            other => other.map(PositiveSize),
        })
    }

    fn from_int(n: i64) -> Option<Result<Self, String>> {
        Some(match u64::try_from(n) {
            Ok(0) | Err(_) => Err(format!("expected {}, found {n}", Self::EXPECTING)),
            Ok(bytes) => Ok(PositiveSize(bytes)),
        })
    }
}

/// An optional size limit (`memory.max_rss`): "" switches the check off.
#[derive(Debug)]
struct OptSize(Option<u64>);

impl Scalar for OptSize {
    const EXPECTING: &'static str =
        r#"a size greater than zero such as "512KiB", "10MiB", "1GiB", or "" for no limit"#;

    fn from_text(text: &str) -> Option<Result<Self, String>> {
        if text.is_empty() {
            return Some(Ok(OptSize(None)));
        }
        Some(match parse_size(text) {
            Ok(bytes) if bytes > 0 => Ok(OptSize(Some(bytes))),
            _ if text.starts_with('-') => Err(format!(
                "{text:?} is negative: expected {}",
                Self::EXPECTING
            )),
            _ => Err(format!("expected {}, found {text:?}", Self::EXPECTING)),
        })
    }

    fn from_int(n: i64) -> Option<Result<Self, String>> {
        Some(match u64::try_from(n) {
            Ok(0) | Err(_) => Err(format!("expected {}, found {n}", Self::EXPECTING)),
            Ok(bytes) => Ok(OptSize(Some(bytes))),
        })
    }
}

/// `health.attempts`, `restart.max_restarts`: zero attempts never probes, and a
/// crash-loop guard of zero never restarts (use `method = "none"` for that).
#[derive(Debug)]
struct Count(u32);

impl Scalar for Count {
    const EXPECTING: &'static str = "a whole number, at least 1";

    fn from_int(n: i64) -> Option<Result<Self, String>> {
        Some(match u32::try_from(n) {
            Ok(n) if n >= 1 => Ok(Count(n)),
            _ => Err(format!("expected {}, found {n}", Self::EXPECTING)),
        })
    }
}

/// `fds.max` and `fds.paths.max`: a limit of zero would restart on every run.
#[derive(Debug)]
struct FdCount(u64);

impl Scalar for FdCount {
    const EXPECTING: &'static str = "a number of file descriptors, at least 1";

    fn from_int(n: i64) -> Option<Result<Self, String>> {
        Some(match u64::try_from(n) {
            Ok(n) if n >= 1 => Ok(FdCount(n)),
            _ => Err(format!("expected {}, found {n}", Self::EXPECTING)),
        })
    }
}

#[derive(Debug)]
struct Percent(u8);

impl Scalar for Percent {
    const EXPECTING: &'static str = "a percentage from 1 to 100 (a whole number, no % sign)";

    fn from_int(n: i64) -> Option<Result<Self, String>> {
        Some(match u8::try_from(n) {
            Ok(n @ 1..=100) => Ok(Percent(n)),
            _ => Err(format!("expected {}, found {n}", Self::EXPECTING)),
        })
    }
}

/// `target.port`: "" (the default) means the port of `health.url`.
#[derive(Debug)]
struct OptPort(Option<u16>);

impl Scalar for OptPort {
    const EXPECTING: &'static str =
        r#"a TCP port from 1 to 65535, or "" for the port of health.url"#;

    fn from_text(text: &str) -> Option<Result<Self, String>> {
        text.is_empty().then_some(Ok(OptPort(None)))
    }

    fn from_int(n: i64) -> Option<Result<Self, String>> {
        Some(match u16::try_from(n) {
            Ok(port) if port != 0 => Ok(OptPort(Some(port))),
            _ => Err(format!("expected {}, found {n}", Self::EXPECTING)),
        })
    }
}

#[derive(Debug)]
struct Status(u16);

impl Scalar for Status {
    const EXPECTING: &'static str = "an HTTP status code from 100 to 599";

    fn from_int(n: i64) -> Option<Result<Self, String>> {
        Some(match u16::try_from(n) {
            Ok(code @ 100..=599) => Ok(Status(code)),
            _ => Err(format!("expected {}, found {n}", Self::EXPECTING)),
        })
    }
}

/// `health.expect_status`: an empty list would fail every probe.
#[derive(Debug)]
struct StatusList(Vec<u16>);

impl<'de> Deserialize<'de> for StatusList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let codes = Vec::<Status>::deserialize(deserializer)?;
        if codes.is_empty() {
            return Err(de::Error::custom(
                "expected a non-empty list of HTTP status codes such as [200], found []",
            ));
        }
        Ok(StatusList(codes.into_iter().map(|s| s.0).collect()))
    }
}

/// `health.url`, kept as written once it is known to parse.
#[derive(Debug)]
struct UrlText(String);

impl Scalar for UrlText {
    const EXPECTING: &'static str = URL_FORM;

    fn from_text(text: &str) -> Option<Result<Self, String>> {
        Some(parse_http_url(text).map(|_| UrlText(text.to_owned())))
    }
}

/// A string that must not be empty (`fds.paths.pattern`: "" matches every FD).
#[derive(Debug)]
struct Text(String);

impl Scalar for Text {
    const EXPECTING: &'static str = "a non-empty string";

    fn from_text(text: &str) -> Option<Result<Self, String>> {
        Some(match text {
            "" => Err(format!(
                "expected {}, found \"\" (it would match every FD)",
                Self::EXPECTING
            )),
            t => Ok(Text(t.to_owned())),
        })
    }
}

/// A string where "" means "not set".
#[derive(Debug)]
struct OptText(Option<String>);

impl Scalar for OptText {
    const EXPECTING: &'static str = r#"a string, or "" for none"#;

    fn from_text(text: &str) -> Option<Result<Self, String>> {
        Some(Ok(OptText((!text.is_empty()).then(|| text.to_owned()))))
    }
}

/// A path that must be set (`files.path`, `state.dir`); `~` is expanded later.
#[derive(Debug)]
struct PathText(String);

impl Scalar for PathText {
    const EXPECTING: &'static str = r#"a path such as "~/.hermes/state.db-wal""#;

    fn from_text(text: &str) -> Option<Result<Self, String>> {
        Some(match text {
            "" => Err(format!("expected {}, found \"\"", Self::EXPECTING)),
            t => Ok(PathText(t.to_owned())),
        })
    }
}

/// A path where "" means "none" (`target.pidfile`, `log.file`, `restart.service_dir`).
#[derive(Debug)]
struct OptPathText(Option<String>);

impl OptPathText {
    fn expand(self, home: Option<&Path>) -> Option<PathBuf> {
        self.0.map(|p| expand_tilde(&p, home))
    }
}

impl Scalar for OptPathText {
    const EXPECTING: &'static str = r#"a path such as "~/.hermes/webui.pid", or "" for none"#;

    fn from_text(text: &str) -> Option<Result<Self, String>> {
        Some(Ok(OptPathText((!text.is_empty()).then(|| text.to_owned()))))
    }
}

/// `metrics.textfile`: "" for none, else a file whose name ends in `.prom`, the only
/// files node_exporter's textfile collector reads: any other name would be written
/// every minute and never scraped.
#[derive(Debug)]
struct PromPath(OptPathText);

impl Scalar for PromPath {
    const EXPECTING: &'static str = r#"a path ending in ".prom" such as "/var/lib/node_exporter/textfile/watchdog.prom", or "" for none"#;

    fn from_text(text: &str) -> Option<Result<Self, String>> {
        let named_prom = Path::new(text)
            .file_name()
            .is_some_and(|name| name.len() > ".prom".len())
            && text.ends_with(".prom");
        Some(if text.is_empty() || named_prom {
            Ok(PromPath(OptPathText(
                (!text.is_empty()).then(|| text.to_owned()),
            )))
        } else {
            Err(format!(
                "expected {}, found {text:?} (node_exporter's textfile collector reads only \
                 *.prom files)",
                Self::EXPECTING
            ))
        })
    }
}

/// `notify.webhook`, `notify.heartbeat_url`: an http or https URL, "" for none.
#[derive(Debug)]
struct NotifyUrl(Option<String>);

impl Scalar for NotifyUrl {
    const EXPECTING: &'static str =
        r#"a URL of the form http[s]://host[:port][/path], or "" for none"#;

    fn from_text(text: &str) -> Option<Result<Self, String>> {
        if text.is_empty() {
            return Some(Ok(NotifyUrl(None)));
        }
        Some(notify::check_url(text).map(|()| NotifyUrl(Some(text.to_owned()))))
    }
}

/// One name of `notify.events`: a log event that may notify.
#[derive(Debug)]
struct NotifyEvent(String);

impl Scalar for NotifyEvent {
    const EXPECTING: &'static str = "a log event name such as \"restarted\"";

    fn from_text(text: &str) -> Option<Result<Self, String>> {
        Some(notify::check_event(text).map(|()| NotifyEvent(text.to_owned())))
    }
}

/// The longest one notifier may take: each is a quick call, and its timeout is added to
/// every run's bound (docs/DESIGN.md, "Invariants"); a run once a minute must not wait
/// minutes on a webhook.
const MAX_NOTIFY_TIMEOUT: Duration = Duration::from_secs(60);

/// `notify.timeout`: more than zero, at most [`MAX_NOTIFY_TIMEOUT`].
#[derive(Debug)]
struct NotifyTimeout(Duration);

impl Scalar for NotifyTimeout {
    const EXPECTING: &'static str = r#"a duration from "1ms" to "1m" such as "5s""#;

    fn from_text(text: &str) -> Option<Result<Self, String>> {
        Some(match parse_duration(text) {
            Ok(d) if !d.is_zero() && d <= MAX_NOTIFY_TIMEOUT => Ok(NotifyTimeout(d)),
            Ok(_) => Err(format!("expected {}, found {text:?}", Self::EXPECTING)),
            Err(e) => Err(e),
        })
    }

    fn from_int(n: i64) -> Option<Result<Self, String>> {
        Some(Err(duration_without_unit(n)))
    }
}

/// `restart.pre_kill_signal`: a signal name, "" for none.
#[derive(Debug)]
struct Signal(Option<i32>);

impl Scalar for Signal {
    const EXPECTING: &'static str = signal::FORM;

    fn from_text(text: &str) -> Option<Result<Self, String>> {
        if text.is_empty() {
            return Some(Ok(Signal(None)));
        }
        Some(signal::parse_pre_kill(text).map(|n| Signal(Some(n))))
    }
}

impl Scalar for Method {
    const EXPECTING: &'static str = "one of \"auto\", \"builtin\", \"launchd\", \"systemd\", \
        \"supervisor\", \"runit\", \"command\", \"none\"";

    fn from_text(text: &str) -> Option<Result<Self, String>> {
        Some(
            Method::ALL
                .iter()
                .find(|m| m.as_str() == text)
                .copied()
                .ok_or_else(|| {
                    format!(
                        "unknown restart method {text:?}: expected {}",
                        Self::EXPECTING
                    )
                }),
        )
    }
}

impl Scalar for FileAction {
    const EXPECTING: &'static str = r#""warn" or "restart""#;

    fn from_text(text: &str) -> Option<Result<Self, String>> {
        Some(match text {
            "warn" => Ok(FileAction::Warn),
            "restart" => Ok(FileAction::Restart),
            t => Err(format!(
                "unknown action {t:?}: expected {}",
                Self::EXPECTING
            )),
        })
    }
}

impl Scalar for LogFormat {
    const EXPECTING: &'static str = r#""json" or "text""#;

    fn from_text(text: &str) -> Option<Result<Self, String>> {
        Some(match text {
            "json" => Ok(LogFormat::Json),
            "text" => Ok(LogFormat::Text),
            t => Err(format!(
                "unknown log format {t:?}: expected {}",
                Self::EXPECTING
            )),
        })
    }
}
