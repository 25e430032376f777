//! The watchdog's config file as a test writes it: [`ConfigToml`], pre-filled for one
//! test server and changed key by key; durations read back in seconds; and the line and
//! column of a key, to check where a config error points.

use std::path::Path;

use super::env::TestEnv;
use super::server::TestServer;

/// A watchdog config as a TOML table, pre-filled for one test server:
///
/// - `[target]` port, pidfile, `startup_grace = "0s"`;
/// - `[health]` the server's /health, `timeout = "1s"`, `attempts = 3`,
///   `interval = "500ms"`, `expect_body = "\"status\": \"ok\""`;
/// - `[fds]` `max = 1000`, one `[[fds.paths]]` rule `state.db` with `max = 500`;
/// - `[restart]` `method = "builtin"`, `stop_timeout = "2s"`, `command_timeout = "5s"`,
///   `verify_timeout = "20s"`, `max_restarts = 3`, `window = "1h"`;
/// - `[log]` file in the temp dir, `format = "json"`; `[state] dir` in the temp dir;
/// - `files = []` (no check of the real `~/.hermes/state.db-wal`).
#[derive(Clone, Debug)]
pub struct ConfigToml(pub toml::Table);

impl ConfigToml {
    pub fn base(env: &TestEnv, server: &TestServer) -> ConfigToml {
        ConfigToml::for_port(env, server.port)
    }

    /// The base configuration (see [`ConfigToml`]) for a server on `port` that the test
    /// did not start itself (one a supervisor runs): `health.url` is its /health.
    pub fn for_port(env: &TestEnv, port: u16) -> ConfigToml {
        let url = format!("http://127.0.0.1:{port}/health");
        let text = format!(
            r#"
files = []

[target]
port = {port}
pidfile = {pidfile}
startup_grace = "0s"

[health]
url = {url}
timeout = "1s"
attempts = 3
interval = "500ms"
expect_status = [200]
expect_body = '"status": "ok"'

[fds]
max = 1000
max_percent = 90
warn_percent = 75

[[fds.paths]]
pattern = "state.db"
max = 500

[restart]
method = "builtin"
command_timeout = "5s"
stop_timeout = "2s"
verify_timeout = "20s"
max_restarts = 3
window = "1h"

[log]
file = {log}
format = "json"

[state]
dir = {state}
"#,
            pidfile = toml_str(&env.pidfile),
            url = toml::Value::from(url),
            log = toml_str(&env.log_file),
            state = toml_str(&env.state_dir),
        );
        ConfigToml(text.parse().expect("base config parses"))
    }

    /// Sets a dotted key, e.g. `set("fds.max", 150)` or `set("health.timeout", "3s")`.
    pub fn set(&mut self, dotted: &str, value: impl Into<toml::Value>) -> &mut Self {
        let (table, key) = self.parent_of(dotted);
        table.insert(key.to_string(), value.into());
        self
    }

    /// Removes a dotted key.
    pub fn remove(&mut self, dotted: &str) -> &mut Self {
        let (table, key) = self.parent_of(dotted);
        table.remove(key);
        self
    }

    /// Replaces the `[[fds.paths]]` rules: `fd_paths(&[])` disables them.
    pub fn fd_paths(&mut self, rules: &[(&str, i64)]) -> &mut Self {
        let arr: Vec<toml::Value> = rules
            .iter()
            .map(|(pattern, max)| {
                let mut t = toml::Table::new();
                t.insert("pattern".into(), (*pattern).into());
                t.insert("max".into(), (*max).into());
                toml::Value::Table(t)
            })
            .collect();
        self.set("fds.paths", arr)
    }

    pub fn text(&self) -> String {
        self.0.to_string()
    }

    /// Writes the config to `env.config_path` and returns the text written.
    pub fn write(&self, env: &TestEnv) -> String {
        let text = self.text();
        env.write_config(&text);
        text
    }

    /// A duration value of the config in seconds (e.g. `secs("restart.stop_timeout")`).
    pub fn secs(&self, dotted: &str) -> f64 {
        let v = self
            .get(dotted)
            .unwrap_or_else(|| panic!("{dotted} not set"));
        parse_duration_secs(v.as_str().expect("duration string"))
    }

    pub fn get(&self, dotted: &str) -> Option<&toml::Value> {
        let mut parts = dotted.split('.');
        let mut cur = self.0.get(parts.next()?)?;
        for p in parts {
            cur = cur.as_table()?.get(p)?;
        }
        Some(cur)
    }

    /// The bound on one run (docs/DESIGN.md, "Invariants"): attempts × timeout +
    /// (attempts − 1) × interval + 2 × stop_timeout + command_timeout + verify_timeout +
    /// notifiers × notify.timeout + 5 s (a notifier: a non-empty `notify.command`,
    /// `notify.webhook` or `notify.heartbeat_url`; `notify.timeout` is 5 s unless set).
    pub fn bound_secs(&self) -> f64 {
        let attempts = self
            .get("health.attempts")
            .and_then(|v| v.as_integer())
            .expect("health.attempts") as f64;
        let notifiers = ["notify.command", "notify.webhook", "notify.heartbeat_url"]
            .iter()
            .filter(|k| {
                self.get(k)
                    .and_then(|v| v.as_str())
                    .is_some_and(|s| !s.is_empty())
            })
            .count() as f64;
        let notify_timeout = match self.get("notify.timeout") {
            Some(_) => self.secs("notify.timeout"),
            None => 5.0,
        };
        attempts * self.secs("health.timeout")
            + (attempts - 1.0) * self.secs("health.interval")
            + 2.0 * self.secs("restart.stop_timeout")
            + self.secs("restart.command_timeout")
            + self.secs("restart.verify_timeout")
            + notifiers * notify_timeout
            + 5.0
    }

    fn parent_of<'a, 'b>(&'a mut self, dotted: &'b str) -> (&'a mut toml::Table, &'b str) {
        let mut parts: Vec<&str> = dotted.split('.').collect();
        let key = parts.pop().expect("non-empty key");
        let mut table = &mut self.0;
        for p in parts {
            table = table
                .entry(p.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .unwrap_or_else(|| panic!("{p} is not a table"));
        }
        (table, key)
    }
}

fn toml_str(p: &Path) -> String {
    toml::Value::from(p.to_str().expect("utf-8 path")).to_string()
}

/// "500ms", "5s", "2m", "1h" → seconds.
pub fn parse_duration_secs(s: &str) -> f64 {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().unwrap_or_else(|_| panic!("bad duration {s:?}"));
    match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => panic!("bad duration unit in {s:?}"),
    }
}

/// 1-based (line, column) of byte `offset` in `text`, columns counted in characters.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    (line, text[line_start..offset].chars().count() + 1)
}

/// Byte offset in `text` of key `key` (value = false) or of its value (value = true)
/// inside the `[section]` table (`""` for the top level). Panics when absent.
pub fn locate(text: &str, section: &str, key: &str, value: bool) -> usize {
    let mut current = String::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            current = trimmed
                .trim_matches(|c| c == '[' || c == ']')
                .trim()
                .to_string();
        } else if current == section {
            let indent = line.len() - line.trim_start().len();
            if let Some(rest) = line.trim_start().strip_prefix(key)
                && rest.trim_start().starts_with('=')
            {
                if !value {
                    return offset + indent;
                }
                let eq = line.find('=').unwrap();
                let after = &line[eq + 1..];
                let ws = after.len() - after.trim_start().len();
                return offset + eq + 1 + ws;
            }
        }
        offset += line.len();
    }
    panic!("key {key} not found in [{section}] of:\n{text}")
}
