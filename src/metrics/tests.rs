//! The exposition text: every family has HELP and TYPE, label values are escaped, a
//! value the report lacks is left out, and every value is the report's.

use super::*;
use crate::decide::Verdict;
use crate::exit_code::ExitCode;
use crate::history::Counters;
use crate::probe::fds::{FdReading, KindCounts, PatternCount};
use crate::probe::os::FdLimit;
use crate::report::{ActionReport, HealthReport, RunReport, TargetReport};
use crate::trend::Trend;

const URL: &str = "http://127.0.0.1:8787/health?deep=1";

fn report() -> Report {
    Report {
        target: Some(TargetReport {
            pid: 4242,
            start_time: "2026-11-28T09:00:00+01:00".into(),
            age_s: 3600,
            argv: vec!["python3".into(), "server.py".into()],
            port: Some(8787),
            state: "running",
            state_label: "running",
            found_by: vec!["port"],
            supervisor: None,
        }),
        port_holders: Vec::new(),
        health: HealthReport {
            ok: true,
            status: Some(200),
            latency_ms: Some(3),
            error: None,
            attempts: 1,
            errors: Vec::new(),
        },
        fds: Some(FdReading {
            total: 512,
            limit: Some(FdLimit {
                soft: Some(4096),
                hard: None,
            }),
            by_kind: KindCounts::default(),
            top_paths: Vec::new(),
            patterns: vec![PatternCount {
                pattern: "state.db".into(),
                count: 420,
                max: 200,
            }],
        }),
        rss_bytes: Some(183_500_800),
        files: Vec::new(),
        verdict: Verdict::Healthy,
        reasons: Vec::new(),
        action: ActionReport {
            kind: "none",
            method: None,
            dry_run: false,
            result: None,
            detail: None,
            new_pid: None,
            new_fds: None,
        },
        exit_code: ExitCode::Restarted,
        bound_s: 116,
        restart_method: "builtin",
        trend: Some(Trend {
            samples: 12,
            window_s: 21600,
            rate_per_hour: 37.25,
            limit: 1000,
            projected_s: Some(3600),
            top_growing: None,
        }),
        incidents: Vec::new(),
        run: RunReport {
            started: "2026-11-28T10:00:00+01:00".into(),
            started_s: 1_795_856_400.042,
            duration_s: 0.012345,
        },
        counters: Counters {
            restarts_total: 7,
            restart_failures_total: 1,
        },
    }
}

/// The sample lines, `name{labels} value`, in order.
fn samples(text: &str) -> Vec<&str> {
    text.lines().filter(|l| !l.starts_with('#')).collect()
}

#[test]
fn every_value_is_the_reports_and_every_family_has_help_and_type() {
    let text = render(&report(), URL);
    let t = r#"target="http://127.0.0.1:8787/health?deep=1""#;
    let expected = [
        format!("watchdog_last_run_timestamp_seconds{{{t}}} 1795856400.042"),
        format!("watchdog_last_exit_code{{{t}}} 1"),
        format!("watchdog_run_duration_seconds{{{t}}} 0.012345"),
        format!("watchdog_health_up{{{t}}} 1"),
        format!("watchdog_health_latency_seconds{{{t}}} 0.003"),
        format!("watchdog_target_up{{{t}}} 1"),
        format!("watchdog_target_fds{{{t}}} 512"),
        format!("watchdog_target_fds_limit{{{t}}} 4096"),
        format!("watchdog_target_fds_pattern{{{t},pattern=\"state.db\"}} 420"),
        format!("watchdog_target_rss_bytes{{{t}}} 183500800"),
        format!("watchdog_target_age_seconds{{{t}}} 3600"),
        format!("watchdog_fd_growth_per_hour{{{t}}} 37.25"),
        format!("watchdog_restarts_total{{{t}}} 7"),
        format!("watchdog_restart_failures_total{{{t}}} 1"),
    ];
    assert_eq!(
        samples(&text),
        expected.iter().map(String::as_str).collect::<Vec<_>>()
    );
    for sample in samples(&text) {
        let name = &sample[..sample.find('{').unwrap()];
        let kind = if name.ends_with("_total") {
            "counter"
        } else {
            "gauge"
        };
        assert!(text.contains(&format!("# HELP {name} ")), "{name}\n{text}");
        assert!(
            text.contains(&format!("# TYPE {name} {kind}\n")),
            "{name}\n{text}"
        );
    }
    assert!(text.ends_with('\n'));
}

/// No process: no FDs, RSS, age or limit; health down; the counters and the run stay.
#[test]
fn what_the_report_lacks_is_left_out_not_written_as_zero() {
    let mut r = report();
    r.target = None;
    r.fds = None;
    r.rss_bytes = None;
    r.trend = None;
    r.health.ok = false;
    r.health.latency_ms = None;
    r.exit_code = ExitCode::NotActed;
    let text = render(&r, URL);
    let names: Vec<&str> = samples(&text)
        .iter()
        .map(|s| &s[..s.find('{').unwrap()])
        .collect();
    assert_eq!(
        names,
        [
            "watchdog_last_run_timestamp_seconds",
            "watchdog_last_exit_code",
            "watchdog_run_duration_seconds",
            "watchdog_health_up",
            "watchdog_target_up",
            "watchdog_restarts_total",
            "watchdog_restart_failures_total",
        ]
    );
    assert!(
        text.contains("watchdog_health_up{target=\"http://127.0.0.1:8787/health?deep=1\"} 0\n")
    );
    assert!(
        !text.contains("fds_limit") && !text.contains("latency"),
        "{text}"
    );

    // A limit that cannot be read (macOS) or is unlimited: no limit series.
    let mut r = report();
    r.fds.as_mut().unwrap().limit = None;
    assert!(!render(&r, URL).contains("watchdog_target_fds_limit"));
    r.fds.as_mut().unwrap().limit = Some(FdLimit {
        soft: None,
        hard: None,
    });
    assert!(!render(&r, URL).contains("watchdog_target_fds_limit"));
    // No [[fds.paths]] rule: no family at all, not an empty one.
    r.fds.as_mut().unwrap().patterns.clear();
    assert!(!render(&r, URL).contains("watchdog_target_fds_pattern"));
}

#[test]
fn label_values_escape_backslash_quote_and_newline() {
    assert_eq!(escape_label(r#"a"b\c"#), r#"a\"b\\c"#);
    assert_eq!(escape_label("line\nbreak"), r"line\nbreak");
    assert_eq!(escape_label("ünïcode ok"), "ünïcode ok");
    let mut r = report();
    let fds = r.fds.as_mut().unwrap();
    fds.patterns = vec![
        PatternCount {
            pattern: "say \"hi\"\\\n".into(),
            count: 2,
            max: 9,
        },
        // The same pattern twice counts the same FDs: one series, not a duplicate the
        // collector would refuse.
        PatternCount {
            pattern: "say \"hi\"\\\n".into(),
            count: 2,
            max: 5,
        },
    ];
    let text = render(&r, "http://h/health?q=\"x\"");
    let lines: Vec<&str> = samples(&text)
        .into_iter()
        .filter(|l| l.starts_with("watchdog_target_fds_pattern"))
        .collect();
    assert_eq!(
        lines,
        [
            r#"watchdog_target_fds_pattern{target="http://h/health?q=\"x\"",pattern="say \"hi\"\\\n"} 2"#
        ]
    );
    assert_eq!(
        text.lines().count(),
        3 * 14,
        "one line per sample, none broken"
    );
}

#[test]
fn numbers_are_spelled_as_the_text_format_reads_them() {
    assert_eq!(number(Value::Int(u64::MAX)), "18446744073709551615");
    assert_eq!(number(Value::Float(0.1 + 0.2)), "0.30000000000000004");
    assert_eq!(number(Value::Float(1e21)), "1000000000000000000000");
    assert_eq!(number(Value::Float(-3.5)), "-3.5");
    assert_eq!(number(Value::Float(f64::NAN)), "NaN");
    assert_eq!(number(Value::Float(f64::INFINITY)), "+Inf");
    assert_eq!(number(Value::Float(f64::NEG_INFINITY)), "-Inf");
    assert_eq!(escape_help("a\\b\nc"), "a\\\\b\\nc");
}

/// Unset: nothing written, nothing checked.
#[test]
fn no_textfile_writes_nothing() {
    let cfg = crate::config::defaults(None);
    assert!(cfg.metrics.textfile.is_none());
    write(&cfg, &report()).expect("nothing to do");
}

/// Written whole, 0644 for node_exporter's user, no temporary file left; a missing
/// directory and a directory in the file's place are reported, not panicked on.
#[test]
fn the_file_is_replaced_whole_and_failures_are_errors() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("watchdog.prom");
    let mut cfg = crate::config::defaults(None);
    cfg.metrics.textfile = Some(path.clone());
    std::fs::write(&path, "old").unwrap();
    write(&cfg, &report()).unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        render(&report(), &cfg.health.url)
    );
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644);
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, [std::ffi::OsString::from("watchdog.prom")]);

    cfg.metrics.textfile = Some(dir.path().join("absent/watchdog.prom"));
    let err = write(&cfg, &report()).unwrap_err();
    assert!(matches!(err, MetricsError::NoDirectory { .. }), "{err}");
    let event = err.event();
    assert_eq!(event.event, "metrics_failed");
    assert!(
        event.message.contains("does not exist"),
        "{}",
        event.message
    );

    std::fs::remove_file(&path).unwrap();
    std::fs::create_dir(&path).unwrap();
    cfg.metrics.textfile = Some(path.clone());
    let err = write(&cfg, &report()).unwrap_err();
    assert!(matches!(err, MetricsError::Write { .. }), "{err}");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no temporary file left"
    );
}

/// Reads an escaped label value back, as Prometheus's parser does.
fn unescape(text: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next()? {
                'n' => out.push('\n'),
                '\\' => out.push('\\'),
                '"' => out.push('"'),
                _ => return None,
            },
            '"' | '\n' => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

proptest::proptest! {
    /// Whatever the config holds, a label value is one line, has no bare quote, and
    /// reads back to what was written; so every sample stays on its own line.
    #[test]
    fn any_label_value_reads_back_and_keeps_its_line(url in ".*", pattern in ".*") {
        proptest::prop_assert_eq!(unescape(&escape_label(&url)), Some(url.clone()));
        let mut r = report();
        r.fds.as_mut().unwrap().patterns[0].pattern = pattern;
        let text = render(&r, &url);
        proptest::prop_assert_eq!(text.lines().count(), 3 * 14);
    }
}
