//! The Prometheus textfile (docs/CONFIG.md, "[metrics]"; docs/REPORT.md, "Metrics"):
//! rewritten at the end of every `check` that is not a dry run, for node_exporter's
//! textfile collector to serve.
//!
//! Every value is taken from the run's [`Report`], the document `--json` prints, so the
//! two cannot disagree; the one label every series carries, `target`, is the health
//! URL, so that several watchdogs can share one collector directory. A series whose
//! value the report does not have (`fds.limit` unreadable, no trend yet, no target) is
//! left out with its HELP and TYPE lines, never written as a made-up 0.
//!
//! The file is replaced atomically (`safe_fs::write_atomic`: a new file of an
//! unpredictable name that does not end in `.prom`, so the collector never reads it
//! half written, renamed over the old one) and only in a directory nobody but this user
//! and root can swap (`safe_fs::check_replaceable_in`, docs/CONFIG.md,
//! "[metrics]"). A file that cannot be written is the caller's to log: it never changes
//! the run's exit code.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::log::{Event, Level};
use crate::report::Report;
use crate::safe_fs::{self, SafeFsError};

/// Readable by node_exporter, which runs as its own user; the content is what
/// node_exporter publishes anyway.
const MODE: u32 = 0o644;

/// Why the textfile was not written (logged as `metrics_failed`).
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error(
        "metrics.textfile {} is not written, since another user could redirect it: \
         {source}; e.g. create /var/lib/node_exporter/textfile and point node_exporter's \
         --collector.textfile.directory at it",
        path.display()
    )]
    Refused {
        path: PathBuf,
        #[source]
        source: SafeFsError,
    },
    #[error(
        "metrics.textfile {}: its directory {} does not exist: create it (and point \
         node_exporter's --collector.textfile.directory at it) or correct metrics.textfile",
        path.display(),
        dir.display()
    )]
    NoDirectory { path: PathBuf, dir: PathBuf },
    #[error(
        "cannot write metrics.textfile {}: {source}; check that this user may write in \
         its directory",
        path.display()
    )]
    Write {
        path: PathBuf,
        #[source]
        source: SafeFsError,
    },
}

impl MetricsError {
    /// The log event that reports it (docs/REPORT.md, "Log events").
    pub fn event(&self) -> Event {
        let path = match self {
            MetricsError::Refused { path, .. }
            | MetricsError::NoDirectory { path, .. }
            | MetricsError::Write { path, .. } => path,
        };
        Event::new(Level::Warning, "metrics_failed", self.to_string())
            .with("textfile", path.display().to_string())
    }
}

/// Writes the textfile `cfg.metrics.textfile` from `report`; nothing when unset.
pub fn write(cfg: &Config, report: &Report) -> Result<(), MetricsError> {
    let Some(path) = &cfg.metrics.textfile else {
        return Ok(());
    };
    check_place(path)?;
    let text = render(report, &cfg.health.url);
    // Not fsynced: it is rewritten every run, and a file a power cut left empty only
    // lacks the series until the next one.
    safe_fs::write_atomic(path, text.as_bytes(), MODE, false).map_err(|source| {
        MetricsError::Write {
            path: path.clone(),
            source,
        }
    })
}

/// Whether this user may replace the textfile `path`: its directory exists and nobody
/// else can swap it (`safe_fs::check_replaceable_in`). Also what `config --check` says.
pub fn check_place(path: &Path) -> Result<(), MetricsError> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    match safe_fs::check_replaceable_in(dir, safe_fs::own_euid()) {
        Ok(()) => Ok(()),
        Err(e) if e.is_not_found() => Err(MetricsError::NoDirectory {
            path: path.to_path_buf(),
            dir: dir.to_path_buf(),
        }),
        Err(source) => Err(MetricsError::Refused {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// A sample's value: counts stay integers (an f64 would round past 2^53).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Value {
    Int(u64),
    Float(f64),
}

impl From<u64> for Value {
    fn from(n: u64) -> Value {
        Value::Int(n)
    }
}

impl From<f64> for Value {
    fn from(x: f64) -> Value {
        Value::Float(x)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Int(u64::from(b))
    }
}

/// The exposition text (Prometheus text format 0.0.4) of `report`, every series
/// labelled `target="<url>"`.
pub fn render(report: &Report, url: &str) -> String {
    let mut out = Exposition {
        text: String::new(),
        target: format!("target=\"{}\"", escape_label(url)),
    };
    let run = &report.run;
    out.gauge(
        "watchdog_last_run_timestamp_seconds",
        "When the last watchdog check started, in seconds since the epoch.",
        run.started_s,
    );
    out.gauge(
        "watchdog_last_exit_code",
        "Exit code of the last check: 0 healthy, 1 restarted, 3 restart failed, 4 unhealthy but not acted on.",
        u64::from(report.exit_code.code()),
    );
    out.gauge(
        "watchdog_run_duration_seconds",
        "How long the last check took, from its start to its report.",
        run.duration_s,
    );
    out.gauge(
        "watchdog_health_up",
        "1 when the health URL passed in the last check, else 0.",
        report.health.ok,
    );
    if let Some(ms) = report.health.latency_ms {
        out.gauge(
            "watchdog_health_latency_seconds",
            "Time to the health URL's answer in the last attempt.",
            ms as f64 / 1000.0,
        );
    }
    out.gauge(
        "watchdog_target_up",
        "1 when the last check found the server process, else 0.",
        report.target.is_some(),
    );
    if let Some(fds) = &report.fds {
        out.gauge(
            "watchdog_target_fds",
            "Open file descriptors of the server process, before any restart.",
            fds.total,
        );
        if let Some(soft) = fds.limit.as_ref().and_then(|l| l.soft) {
            out.gauge(
                "watchdog_target_fds_limit",
                "Soft RLIMIT_NOFILE of the server process (absent where unreadable or unlimited).",
                soft,
            );
        }
        let mut seen = Vec::new();
        let mut samples = Vec::new();
        for p in &fds.patterns {
            // Two rules with one pattern count the same FDs; a repeated series would
            // make the collector refuse the whole file.
            if seen.contains(&p.pattern.as_str()) {
                continue;
            }
            seen.push(p.pattern.as_str());
            samples.push((
                format!("pattern=\"{}\"", escape_label(&p.pattern)),
                Value::from(p.count),
            ));
        }
        out.family(
            "watchdog_target_fds_pattern",
            "gauge",
            "Open file descriptors of the server whose path contains the [[fds.paths]] pattern.",
            &samples,
        );
    }
    if let Some(rss) = report.rss_bytes {
        out.gauge(
            "watchdog_target_rss_bytes",
            "Resident memory of the server process.",
            rss,
        );
    }
    if let Some(target) = &report.target {
        out.gauge(
            "watchdog_target_age_seconds",
            "Age of the server process.",
            target.age_s,
        );
    }
    if let Some(trend) = &report.trend {
        out.gauge(
            "watchdog_fd_growth_per_hour",
            "Fitted growth of the server's open file descriptors per hour (absent without enough samples).",
            trend.rate_per_hour,
        );
    }
    out.counter(
        "watchdog_restarts_total",
        "Restarts, starts and orphan kills the watchdog attempted, failed ones included.",
        report.counters.restarts_total,
    );
    out.counter(
        "watchdog_restart_failures_total",
        "Restarts that failed or did not make the server healthy in time.",
        report.counters.restart_failures_total,
    );
    out.text
}

struct Exposition {
    text: String,
    /// `target="…"`, escaped once.
    target: String,
}

impl Exposition {
    fn gauge(&mut self, name: &str, help: &str, value: impl Into<Value>) {
        self.family(name, "gauge", help, &[(String::new(), value.into())]);
    }

    fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.family(name, "counter", help, &[(String::new(), value.into())]);
    }

    /// HELP, TYPE and one line per sample (`extra` labels beside `target`); nothing at
    /// all without samples.
    fn family(&mut self, name: &str, kind: &str, help: &str, samples: &[(String, Value)]) {
        if samples.is_empty() {
            return;
        }
        // Writing into a String cannot fail.
        let _ = writeln!(self.text, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
        for (extra, value) in samples {
            let sep = if extra.is_empty() { "" } else { "," };
            let _ = writeln!(
                self.text,
                "{name}{{{}{sep}{extra}}} {}",
                self.target,
                number(*value)
            );
        }
    }
}

/// A label value in the text format: backslash, double quote and line feed escaped
/// (the URL and the patterns come from the config and may hold any of them).
fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// HELP text escapes backslash and line feed only.
fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A sample value as the text format spells it: Go's float syntax, `NaN`, `+Inf`,
/// `-Inf`. Rust's `Display` of a finite f64 is the shortest text that reads back to the
/// same number, never in exponent form, which Go's `ParseFloat` reads.
fn number(value: Value) -> String {
    match value {
        Value::Int(n) => n.to_string(),
        Value::Float(x) if x.is_nan() => "NaN".into(),
        Value::Float(x) if x.is_infinite() => if x > 0.0 { "+Inf" } else { "-Inf" }.into(),
        Value::Float(x) => x.to_string(),
    }
}

#[cfg(test)]
mod tests;
