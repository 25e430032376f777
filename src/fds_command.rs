//! `watchdog fds`: the target's FD census, the replacement for
//! `lsof -p PID | sort | uniq -c | sort -rn | head`.

use std::fmt::Write as _;

use serde_json::json;

use crate::cli::Options;
use crate::config::Config;
use crate::exit_code::ExitCode;
use crate::history::History;
use crate::probe::fds::{self, FdReading};
use crate::target::{self, Sources};

pub fn run(cfg: &Config, opts: &Options, top: usize) -> ExitCode {
    let last_pid = History::load(&cfg.state.dir.join("history.json"))
        .history
        .last_pid;
    let discovery = target::discover(&Sources {
        pid: opts.pid,
        pidfile: if opts.pid.is_some() {
            None
        } else {
            cfg.target.pidfile.clone()
        },
        port: cfg.port(),
        match_: cfg.target.match_.clone(),
        last_known_pid: last_pid,
    });
    let Some(target) = discovery.target else {
        eprintln!(
            "watchdog: no server process found; name it with --pid, --pidfile, --port or --match"
        );
        for finding in &discovery.findings {
            eprintln!("watchdog: {finding:?}");
        }
        return ExitCode::NotActed;
    };
    let pid = target.info.pid();
    // JSON lists every path; the table only the top N.
    let limit = if opts.json { usize::MAX } else { top };
    let reading = match fds::read(pid, &cfg.fds.paths, limit) {
        Ok(reading) => reading,
        Err(e) => {
            eprintln!("watchdog: cannot read the FDs of PID {pid}: {e}");
            return ExitCode::NotActed;
        }
    };
    if opts.json {
        let doc = json!({
            "target": { "pid": pid, "argv": target.info.argv },
            "fds": reading,
        });
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    } else {
        print!("{}", table(pid, &target.info.command_line(), &reading));
    }
    ExitCode::Healthy
}

fn table(pid: u32, command: &str, r: &FdReading) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "PID {pid}  {command}");
    let limit = match r.limit {
        Some(l) => format!(
            "soft {} / hard {}",
            l.soft.map_or("unlimited".into(), |v| v.to_string()),
            l.hard.map_or("unlimited".into(), |v| v.to_string())
        ),
        None => "unknown on this platform".into(),
    };
    let percent = r
        .percent_of_soft_limit()
        .map(|p| format!(" ({p:.0}% of soft)"))
        .unwrap_or_default();
    let _ = writeln!(out, "open FDs  {}{percent}   limit {limit}", r.total);
    let k = &r.by_kind;
    let _ = writeln!(
        out,
        "by kind   file {}  socket {}  pipe {}  other {}",
        k.file, k.socket, k.pipe, k.other
    );
    for p in &r.patterns {
        let _ = writeln!(
            out,
            "pattern   {:?}: {} (max {})",
            p.pattern, p.count, p.max
        );
    }
    if !r.top_paths.is_empty() {
        let _ = writeln!(out, "\n  COUNT  PATH");
        for p in &r.top_paths {
            let _ = writeln!(out, "{:>7}  {}", p.count, p.path);
        }
    }
    out
}
