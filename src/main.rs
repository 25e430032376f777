use std::process::ExitCode as StdExitCode;

use clap::Parser;

use watchdog::cli::Cli;
use watchdog::commands;
use watchdog::config::{self, Config};
use watchdog::deadline::{self, failsafe};
use watchdog::exit_code::ExitCode;

fn main() -> StdExitCode {
    // Before anything that reads a file: a config on a hung mount, or a FIFO planted in
    // its place, must not hold the run for ever (src/deadline/failsafe.rs).
    failsafe::arm(
        failsafe::LOADING_BOUND,
        ExitCode::Usage,
        "reading the configuration",
    );
    // clap prints usage errors itself and exits 2 (docs/DESIGN.md, "Exit codes").
    let cli = Cli::parse();
    run(&cli).into()
}

/// clap stops here: the subcommands get plain values (src/commands/mod.rs).
fn run(cli: &Cli) -> ExitCode {
    let (cfg, source) = match load_config(cli) {
        Ok(loaded) => loaded,
        Err(message) => {
            eprintln!("watchdog: {message}");
            return ExitCode::Usage;
        }
    };
    let command = cli.subcommand();
    let opts = cli.options.plain();
    let (code, doing) = command.stakes();
    failsafe::arm(
        deadline::run_bound(&cfg).saturating_add(failsafe::GRACE),
        code,
        doing,
    );
    commands::run(&command, &cfg, source.as_deref(), &opts)
}

fn load_config(cli: &Cli) -> Result<(Config, Option<std::path::PathBuf>), String> {
    let loaded = config::load(cli.options.config.as_deref()).map_err(|e| e.to_string())?;
    let mut cfg = loaded.config;
    cfg.apply(&cli.options.overrides())
        .map_err(|e| e.to_string())?;
    Ok((cfg, loaded.source))
}
