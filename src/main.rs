use std::process::ExitCode as StdExitCode;

use clap::Parser;

use watchdog::cli::{Cli, Command};
use watchdog::config::{self, Config};
use watchdog::cycle;
use watchdog::exit_code::ExitCode;
use watchdog::failsafe;
use watchdog::schedule;

fn main() -> StdExitCode {
    // Before anything that reads a file: a config on a hung mount, or a FIFO planted in
    // its place, must not hold the run for ever (src/failsafe.rs).
    failsafe::arm(
        failsafe::LOADING_BOUND,
        ExitCode::Usage,
        "reading the configuration",
    );
    // clap prints usage errors itself and exits 2 (docs/DESIGN.md, "Exit codes").
    let cli = Cli::parse();
    run(cli).into()
}

fn run(cli: Cli) -> ExitCode {
    let opts = &cli.options;
    let (cfg, source) = match load_config(&cli) {
        Ok(loaded) => loaded,
        Err(message) => {
            eprintln!("watchdog: {message}");
            return ExitCode::Usage;
        }
    };
    let command = cli.command.as_ref().unwrap_or(&Command::Check);
    let (code, doing) = command.stakes();
    failsafe::arm(
        watchdog::deadline::run_bound(&cfg).saturating_add(failsafe::GRACE),
        code,
        doing,
    );
    match command {
        Command::Check => cycle::check(&cfg, opts),
        Command::Status => cycle::status(&cfg, opts),
        Command::Fds { top } => watchdog::fds_command::run(&cfg, opts, *top),
        Command::Config { check } => print_config(&cfg, source.as_deref(), *check),
        Command::Schedule {
            kind,
            install,
            uninstall,
        } => {
            // The units and the LaunchAgent go under the user's home: never guess it.
            let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) else {
                eprintln!("watchdog: HOME is not set: schedule needs the user's home directory");
                return ExitCode::Usage;
            };
            let job = schedule::Job {
                exe: std::env::current_exe().unwrap_or_else(|_| "watchdog".into()),
                // The job runs from another directory: a relative path would not hold.
                config: source.as_deref().and_then(|p| std::path::absolute(p).ok()),
                home: home.into(),
            };
            let step = match (install, uninstall) {
                (true, _) => schedule::Step::Install,
                (_, true) => schedule::Step::Uninstall,
                _ => schedule::Step::Print,
            };
            schedule::run(*kind, step, &job)
        }
    }
}

fn load_config(cli: &Cli) -> Result<(Config, Option<std::path::PathBuf>), String> {
    let loaded = config::load(cli.options.config.as_deref()).map_err(|e| e.to_string())?;
    let mut cfg = loaded.config;
    cfg.apply(&cli.options.overrides())
        .map_err(|e| e.to_string())?;
    Ok((cfg, loaded.source))
}

fn print_config(cfg: &Config, source: Option<&std::path::Path>, check_only: bool) -> ExitCode {
    let origin = source.map_or("no config file; defaults".into(), |p| {
        p.display().to_string()
    });
    if check_only {
        eprintln!("watchdog: configuration OK ({origin})");
    } else {
        println!("# from: {origin}");
        print!("{}", cfg.to_toml());
    }
    ExitCode::Healthy
}
