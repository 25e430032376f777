//! `watchdog status`: observe and decide as `check --dry-run` would, print a readable
//! report (or `--json`), and touch nothing: not the lock, the log or the history.

use std::time::SystemTime;

use crate::config::Config;
use crate::deadline::{Deadline, run_bound};
use crate::decide;
use crate::exit_code::ExitCode;
use crate::incident;
use crate::probe;
use crate::report;

use super::check::exit_code;
use super::state::{LISTED_INCIDENTS, decision_context, load_history, prober, trusted_dirs};
use super::{Options, print_json};

/// Observe and decide as `check --dry-run` would; print; touch nothing, not even the
/// log or the history.
pub fn run(cfg: &Config, opts: &Options) -> ExitCode {
    let bound = run_bound(cfg);
    let Some(prober) = prober(cfg) else {
        return ExitCode::Usage;
    };
    if let Err(refused) = trusted_dirs(cfg, false) {
        eprintln!("watchdog: {refused}");
        return ExitCode::Usage;
    }
    let history = load_history(cfg, SystemTime::now(), None);
    let obs = probe::observe(
        cfg,
        opts.pid,
        history.memory(),
        &prober,
        Deadline::after(bound),
    );
    let context = decision_context(cfg, &history, &obs, obs.at, true);
    let decision = decide::decide(&obs, cfg, &context);
    let report = report::build(&report::Inputs {
        observation: &obs,
        decision: &decision,
        trend: context.trend.as_ref(),
        incidents: incident::latest(&cfg.state.dir, LISTED_INCIDENTS),
        outcome: None,
        exit_code: exit_code(&decision, None),
        port: cfg.port(),
        dry_run: true,
        bound,
        run: report::RunTimes::so_far(),
        counters: history.counters,
    });
    let report = report.with_user_names();
    if opts.json {
        print_json(&report);
    } else {
        print!("{}", report::status_text(&report, &cfg.health.url));
    }
    report.exit_code
}
