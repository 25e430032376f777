//! `watchdog config [--check]`: print the effective configuration as TOML (defaults,
//! file and flags merged), or with `--check` only say it is valid. A configuration that
//! is not valid never gets here: `src/main.rs` exits 2 with its file:line:column.

use std::path::Path;

use crate::config::Config;
use crate::exit_code::ExitCode;
use crate::metrics;

pub fn run(cfg: &Config, source: Option<&Path>, check_only: bool) -> ExitCode {
    let origin = source.map_or("no config file; defaults".into(), |p| {
        p.display().to_string()
    });
    // Valid but worth a second look (src/config/tls.rs): said by `config` and
    // `config --check` alike, on stderr so that printed TOML stays clean.
    for warning in crate::config::tls::warnings(cfg) {
        eprintln!("watchdog: warning: {warning}");
    }
    if check_only {
        eprintln!("watchdog: configuration OK ({origin})");
        // Said now rather than found in the log later; a warning only, since the
        // scheduled run may be another user (root) than the one asking.
        if let Some(Err(e)) = cfg.metrics.textfile.as_deref().map(metrics::check_place) {
            eprintln!("watchdog: warning: {e}");
        }
    } else {
        println!("# from: {origin}");
        print!("{}", cfg.to_toml());
    }
    ExitCode::Healthy
}
