//! `watchdog fds [--top N]`: the target's FD census, the replacement for
//! `lsof -p PID | sort | uniq -c | sort -rn | head`.

use std::fmt::Write as _;

use serde_json::json;

use crate::config::Config;
use crate::exit_code::ExitCode;
use crate::history::{self, History};
use crate::probe::census::{self, Census};
use crate::probe::discover::{self, Sources};

use super::Options;

pub fn run(cfg: &Config, opts: &Options, top: usize) -> ExitCode {
    let last_pid = History::load(&history::path(&cfg.state.dir), std::time::SystemTime::now())
        .history
        .last_pid;
    let discovery = discover::discover(&Sources::for_run(cfg, opts.pid, last_pid));
    let Some(target) = discovery.target else {
        eprintln!(
            "watchdog: no server process found; name it with --pid, --pidfile, --port or --match"
        );
        for finding in &discovery.findings {
            eprintln!("watchdog: {}", finding.describe());
        }
        return ExitCode::NotActed;
    };
    let pid = target.info.pid();
    let census = match census::take(pid, &cfg.fds.paths) {
        Ok(census) => census,
        Err(e) => {
            // Never a count of 0: an unreadable process is not an empty one.
            eprintln!("watchdog: cannot take the FD census of PID {pid}: {e}");
            return ExitCode::NotActed;
        }
    };
    if opts.json {
        let doc = json!({
            "target": { "pid": pid, "argv": target.info.argv },
            "fds": census,
        });
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    } else {
        print!("{}", table(pid, &target.info.command_line(), &census, top));
    }
    ExitCode::Healthy
}

fn table(pid: u32, command: &str, c: &Census, top: usize) -> String {
    let r = &c.reading;
    let mut out = String::new();
    let _ = writeln!(out, "PID {pid}  {command}");
    let percent = r
        .percent_of_soft_limit()
        .map(|p| format!(" ({p:.0}% of the soft limit)"))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "open FDs   {}{percent}; {}",
        r.total,
        r.describe_limit()
    );
    let kinds: Vec<String> = c.kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
    let _ = writeln!(out, "by kind    {}", kinds.join(", "));
    if c.deleted > 0 {
        let _ = writeln!(out, "deleted    {} FDs on deleted files", c.deleted);
    }
    for p in &r.patterns {
        let _ = writeln!(out, "pattern    {}", p.describe());
    }
    if !c.sqlite.is_empty() {
        let _ = writeln!(out, "\nSQLite databases (all their FDs):");
        for f in &c.sqlite {
            let _ = writeln!(
                out,
                "{:>7}  {}   (db {}, -wal {}, -shm {}, -journal {})",
                f.total, f.database, f.db, f.wal, f.shm, f.journal
            );
        }
    }
    if !r.top_paths.is_empty() {
        let _ = writeln!(out, "\n  COUNT  PATH");
        for p in r.top_paths.iter().take(top) {
            let _ = writeln!(out, "{:>7}  {}", p.count, p.path);
        }
        let more = r.top_paths.len().saturating_sub(top);
        if more > 0 {
            let _ = writeln!(
                out,
                "         ... {more} more paths (--top N, or --json for all)"
            );
        }
    }
    if !c.tcp.is_empty() {
        let _ = writeln!(out, "\n     FD  PROTO  STATE        LOCAL -> REMOTE");
        for t in &c.tcp {
            let _ = writeln!(
                out,
                "{:>7}  {:<5}  {:<11}  {} -> {}",
                t.fd, t.proto, t.state, t.local, t.remote
            );
        }
    }
    out
}
