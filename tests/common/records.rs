//! What a run leaves to read: the JSON report on stdout, the JSON-lines log and
//! `history.json` in the state dir (docs/REPORT.md), and the time now in the seconds
//! since the epoch that history's samples carry.

use std::fs;
use std::path::PathBuf;

use serde_json::Value;

use super::env::TestEnv;
use super::run::RunResult;

/// Parses stdout of a `--json` run: exactly one JSON document and nothing else.
pub fn report(r: &RunResult) -> Value {
    serde_json::from_str(r.stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "stdout is not exactly one JSON document ({e})\n{}",
            r.dump()
        )
    })
}

/// The reason codes of a report (`reasons[].code`).
pub fn reason_codes(report: &Value) -> Vec<String> {
    report["reasons"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r["code"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Every event in the JSON-lines log (empty when there is no log file). Panics on a line
/// that is not a JSON object.
pub fn log_events(env: &TestEnv) -> Vec<Value> {
    let text = match fs::read_to_string(&env.log_file) {
        Ok(t) => t,
        Err(_) => return Vec::new(),
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {l}"));
            assert!(v.is_object(), "log line is not an object: {l}");
            v
        })
        .collect()
}

/// The events named `name`.
pub fn events_named(env: &TestEnv, name: &str) -> Vec<Value> {
    log_events(env)
        .into_iter()
        .filter(|e| e["event"] == name)
        .collect()
}

/// The log as text, for assertion messages.
pub fn log_text(env: &TestEnv) -> String {
    fs::read_to_string(&env.log_file).unwrap_or_else(|_| "<no log file>".into())
}

pub fn history_path(env: &TestEnv) -> PathBuf {
    env.state_dir.join("history.json")
}

/// The watchdog's history file as JSON; panics when it is missing or not JSON.
pub fn read_history(env: &TestEnv) -> Value {
    let path = history_path(env);
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not JSON ({e}): {text}", path.display()))
}

/// Replaces the history file atomically (no watchdog may be running).
pub fn write_history(env: &TestEnv, doc: &Value) {
    let path = history_path(env);
    let tmp = env.state_dir.join(".history.test.tmp");
    fs::write(&tmp, serde_json::to_string_pretty(doc).unwrap()).expect("write history");
    fs::rename(&tmp, &path).expect("replace history");
}

/// The `samples` array of the history (empty when absent).
pub fn history_samples(env: &TestEnv) -> Vec<Value> {
    read_history(env)["samples"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Moves every FD sample `secs` seconds into the past, keeping everything else intact.
pub fn shift_samples(env: &TestEnv, secs: u64) {
    let mut doc = read_history(env);
    let shown = doc.to_string();
    let samples = doc["samples"]
        .as_array_mut()
        .unwrap_or_else(|| panic!("history has no samples array: {shown}"));
    for s in samples.iter_mut() {
        let at = s["at"]
            .as_u64()
            .unwrap_or_else(|| panic!("sample without at: {s}"));
        s["at"] = Value::from(at - secs);
    }
    write_history(env, &doc);
}

/// Seconds since the epoch now.
pub fn epoch_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Samples of `pid` `age` seconds before its last real sample with `offset` FDs more
/// than it, copied from that sample and put first. Every other field is kept.
pub fn prefill_points(env: &TestEnv, pid: u32, points: &[(u64, i64)]) {
    let mut doc = read_history(env);
    let samples = doc["samples"].as_array().cloned().unwrap_or_default();
    let last = samples
        .iter()
        .rev()
        .find(|s| s["pid"] == pid)
        .unwrap_or_else(|| panic!("no sample of PID {pid}: {doc}"))
        .clone();
    let at = last["at"].as_u64().unwrap();
    let total = last["total"].as_i64().unwrap();
    let mut filled = Vec::new();
    for &(age, offset) in points {
        let mut s = last.clone();
        s["at"] = Value::from(at - age);
        assert!(
            total + offset >= 0,
            "a sample below 0 FDs: {total} {offset:+}"
        );
        s["total"] = Value::from(total + offset);
        filled.push(s);
    }
    filled.extend(samples);
    doc["samples"] = Value::Array(filled);
    write_history(env, &doc);
}
