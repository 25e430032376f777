//! The effective configuration written back as TOML (`watchdog config`): every key, in the
//! order of docs/CONFIG.md, in the same forms the parser accepts, so that the output can be
//! saved and read back unchanged.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use super::{Config, signal};
use crate::units::{format_duration, format_size};

/// Collects `key = value` lines.
struct Doc(String);

impl Doc {
    fn line(&mut self, text: &str) {
        self.0.push_str(text);
        self.0.push('\n');
    }

    fn raw(&mut self, key: &str, value: impl std::fmt::Display) {
        // Writing into a String cannot fail.
        let _ = writeln!(self.0, "{key} = {value}");
    }

    fn str(&mut self, key: &str, value: &str) {
        self.raw(key, quote(value));
    }

    fn opt_str(&mut self, key: &str, value: Option<&str>) {
        self.str(key, value.unwrap_or(""));
    }

    fn path(&mut self, key: &str, value: &Path) {
        self.str(key, &value.to_string_lossy());
    }

    fn opt_path(&mut self, key: &str, value: Option<&Path>) {
        self.opt_str(key, value.map(|p| p.to_string_lossy()).as_deref());
    }

    fn duration(&mut self, key: &str, value: Duration) {
        self.str(key, &format_duration(value));
    }

    fn size(&mut self, key: &str, value: u64) {
        self.str(key, &format_size(value));
    }
}

pub(super) fn to_toml(cfg: &Config) -> String {
    let mut doc = Doc(String::new());
    doc.line("# watchdog: the effective configuration. \"\" means not set.");
    if cfg.files.is_empty() {
        // A top-level key must come before the first table header.
        doc.line("files = []                    # no file-size checks");
    }
    target(&mut doc, cfg);
    health(&mut doc, cfg);
    fds(&mut doc, cfg);
    doc.line("\n# RSS limit; \"\" = no check.\n[memory]");
    match cfg.memory.max_rss {
        Some(bytes) => doc.size("max_rss", bytes),
        None => doc.str("max_rss", ""),
    }
    files(&mut doc, cfg);
    restart(&mut doc, cfg);
    log(&mut doc, cfg);
    doc.line("\n# Lock, history, incident snapshots.\n[state]");
    doc.path("dir", &cfg.state.dir);
    doc.line(
        "\n# Prometheus textfile-collector file (*.prom), rewritten every check; \"\" = none.\n[metrics]",
    );
    doc.opt_path("textfile", cfg.metrics.textfile.as_deref());
    notify(&mut doc, cfg);
    doc.0
}

fn target(doc: &mut Doc, cfg: &Config) {
    let t = &cfg.target;
    doc.line("\n# How to find the server process.\n[target]");
    doc.opt_path("pidfile", t.pidfile.as_deref());
    match t.port {
        Some(port) => doc.raw("port", port),
        None => doc.line("port = \"\"                     # the port of health.url"),
    }
    doc.opt_str("match", t.match_.as_deref());
    doc.duration("startup_grace", t.startup_grace);
}

fn health(doc: &mut Doc, cfg: &Config) {
    let h = &cfg.health;
    doc.line("\n# Unhealthy only when every attempt fails.\n[health]");
    doc.str("url", &h.url);
    doc.duration("timeout", h.timeout);
    doc.raw("attempts", h.attempts);
    doc.duration("interval", h.interval);
    let codes: Vec<String> = h.expect_status.iter().map(u16::to_string).collect();
    doc.raw("expect_status", format!("[{}]", codes.join(", ")));
    doc.opt_str("expect_body", h.expect_body.as_deref());
    doc.raw("insecure_tls", h.insecure_tls);
    doc.opt_path("ca_file", h.ca_file.as_deref());
    let fields: Vec<String> = h.busy_fields.iter().map(|f| quote(f)).collect();
    doc.raw("busy_fields", format!("[{}]", fields.join(", ")));
}

fn fds(doc: &mut Doc, cfg: &Config) {
    let f = &cfg.fds;
    doc.line("\n# Open file descriptors of the target.\n[fds]");
    doc.raw("max", f.max);
    doc.raw("max_percent", f.max_percent);
    doc.raw("warn_percent", f.warn_percent);
    doc.duration("trend_window", f.trend_window);
    doc.duration("trend_horizon", f.trend_horizon);
    doc.raw("trend_restart", f.trend_restart);
    if f.paths.is_empty() {
        doc.line("paths = []");
    }
    for rule in &f.paths {
        doc.line("[[fds.paths]]");
        doc.str("pattern", &rule.pattern);
        doc.raw("max", rule.max);
    }
    // Shown while off too, so that the output names the knob (and still reads back).
    let off = super::FdBudget {
        base: 0,
        per: 0,
        field: String::new(),
        factor: 2.0,
    };
    let b = f.budget.as_ref().unwrap_or(&off);
    doc.line("# Expected FDs = base + per × the /health number `field`; a warning above");
    doc.line("# factor × that. Off while field is \"\".");
    doc.line("[fds.budget]");
    doc.raw("base", b.base);
    doc.raw("per", b.per);
    doc.str("field", &b.field);
    doc.raw("factor", format!("{:?}", b.factor));
}

fn files(doc: &mut Doc, cfg: &Config) {
    if cfg.files.is_empty() {
        return;
    }
    doc.line("\n# File-size checks.");
    for rule in &cfg.files {
        doc.line("[[files]]");
        doc.path("path", &rule.path);
        doc.size("max_size", rule.max_size);
        doc.str("action", rule.action.as_str());
    }
}

fn restart(doc: &mut Doc, cfg: &Config) {
    let r = &cfg.restart;
    doc.line("\n# How a restart is carried out, and the crash-loop guard.\n[restart]");
    doc.str("method", r.method.as_str());
    doc.opt_str("label", r.label.as_deref());
    doc.opt_str("unit", r.unit.as_deref());
    doc.opt_str("program", r.program.as_deref());
    doc.opt_path("service_dir", r.service_dir.as_deref());
    doc.opt_str("command", r.command.as_deref());
    doc.opt_str("start_command", r.start_command.as_deref());
    doc.duration("command_timeout", r.command_timeout);
    doc.duration("stop_timeout", r.stop_timeout);
    doc.duration("verify_timeout", r.verify_timeout);
    doc.raw("max_restarts", r.max_restarts);
    doc.duration("window", r.window);
    doc.raw("kill_orphans", r.kill_orphans);
    // A number with no known name is written as is: reading it back fails loudly
    // rather than dropping the setting.
    let signal = r
        .pre_kill_signal
        .map(|n| signal::name(n).map_or_else(|| n.to_string(), str::to_owned));
    doc.opt_str("pre_kill_signal", signal.as_deref());
    doc.duration("max_defer", r.max_defer);
}

fn log(doc: &mut Doc, cfg: &Config) {
    let l = &cfg.log;
    doc.line("\n# The event log; file = \"\" disables the file.\n[log]");
    doc.opt_path("file", l.file.as_deref());
    doc.str("format", l.format.as_str());
    doc.raw("syslog", l.syslog);
    doc.size("max_size", l.max_size);
    doc.raw("heartbeat", l.heartbeat);
}

fn notify(doc: &mut Doc, cfg: &Config) {
    let n = &cfg.notify;
    doc.line("\n# Who hears about a run; each notifier is bounded by timeout.\n[notify]");
    doc.opt_str("command", n.command.as_deref());
    doc.opt_str("webhook", n.webhook.as_deref());
    let events: Vec<String> = n.events.iter().map(|e| quote(e)).collect();
    doc.raw("events", format!("[{}]", events.join(", ")));
    doc.opt_str("heartbeat_url", n.heartbeat_url.as_deref());
    doc.duration("timeout", n.timeout);
}

/// A TOML basic string: quotes, backslashes and control characters escaped.
fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
