use std::process::ExitCode as StdExitCode;

use clap::{CommandFactory as _, Parser};

use watchdog::cli::{self, Cli, GenerateArg, ScheduleArg};
use watchdog::commands::{self, Command, Options, generate, schedule};
use watchdog::config::{self, Config, Overrides};
use watchdog::deadline::{self, failsafe};
use watchdog::exit_code::ExitCode;
use watchdog::log::Verbosity;

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

fn run(cli: &Cli) -> ExitCode {
    // Before the configuration: the man page and completions depend only on the
    // command line, and a packager's build has no config to load.
    if let Some(kind) = cli.generate {
        if cli.command.is_some() {
            eprintln!("watchdog: --generate prints a file and takes no subcommand");
            return ExitCode::Usage;
        }
        let kind = match kind {
            GenerateArg::Man => generate::Kind::Man,
            GenerateArg::CompleteBash => generate::Kind::Bash,
            GenerateArg::CompleteZsh => generate::Kind::Zsh,
            GenerateArg::CompleteFish => generate::Kind::Fish,
            GenerateArg::CompletePowershell => generate::Kind::PowerShell,
        };
        return generate::run(kind, Cli::command());
    }
    let (cfg, source) = match load_config(&cli.options) {
        Ok(loaded) => loaded,
        Err(message) => {
            eprintln!("watchdog: {message}");
            return ExitCode::Usage;
        }
    };
    // clap stops here: the subcommands take plain values (src/commands/mod.rs).
    let (command, opts) = construct(cli);
    let (code, doing) = command.stakes();
    failsafe::arm(
        deadline::run_bound(&cfg).saturating_add(failsafe::GRACE),
        code,
        doing,
    );
    commands::run(&command, &cfg, source.as_deref(), &opts)
}

fn load_config(opts: &cli::Options) -> Result<(Config, Option<std::path::PathBuf>), String> {
    let loaded = config::load(opts.config.as_deref()).map_err(|e| e.to_string())?;
    let mut cfg = loaded.config;
    cfg.apply(&overrides(opts)).map_err(|e| e.to_string())?;
    Ok((cfg, loaded.source))
}

/// The options that override the configuration file's keys.
fn overrides(opts: &cli::Options) -> Overrides {
    Overrides {
        url: opts.url.clone(),
        port: opts.port,
        pidfile: opts.pidfile.clone(),
        match_: opts.match_.clone(),
        max_fds: opts.max_fds,
    }
}

/// The subcommand (none given is `check`) and the shared options, as the plain values
/// the subcommands take.
fn construct(cli: &Cli) -> (Command, Options) {
    let command = match &cli.command {
        None | Some(cli::Command::Check) => Command::Check,
        Some(cli::Command::Status) => Command::Status,
        Some(cli::Command::Fds { top }) => Command::Fds { top: *top },
        Some(cli::Command::Config { check }) => Command::Config { check_only: *check },
        Some(cli::Command::Schedule {
            kind,
            every,
            install,
            uninstall,
        }) => Command::Schedule {
            every: every.unwrap_or(schedule::DEFAULT_EVERY),
            kind: match kind {
                ScheduleArg::Cron => schedule::ScheduleKind::Cron,
                ScheduleArg::Launchd => schedule::ScheduleKind::Launchd,
                ScheduleArg::Systemd => schedule::ScheduleKind::Systemd,
            },
            step: match (install, uninstall) {
                (true, _) => schedule::Step::Install,
                (_, true) => schedule::Step::Uninstall,
                _ => schedule::Step::Print,
            },
        },
    };
    let o = &cli.options;
    let options = Options {
        pid: o.pid,
        dry_run: o.dry_run,
        json: o.json,
        verbosity: if o.quiet {
            Verbosity::Quiet
        } else if o.verbose {
            Verbosity::Verbose
        } else {
            Verbosity::Normal
        },
    };
    (command, options)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(args: &[&str]) -> (Command, Options) {
        construct(&Cli::try_parse_from(args).unwrap())
    }

    #[test]
    fn no_subcommand_is_check_and_the_shared_options_carry_over() {
        let (command, opts) = parsed(&["watchdog", "--dry-run", "--pid", "42", "-v"]);
        assert_eq!(command, Command::Check);
        assert_eq!(
            opts,
            Options {
                pid: Some(42),
                dry_run: true,
                json: false,
                verbosity: Verbosity::Verbose,
            }
        );
        let (command, opts) = parsed(&["watchdog", "status", "--json", "-q"]);
        assert_eq!(command, Command::Status);
        assert!(opts.json && opts.verbosity == Verbosity::Quiet && opts.pid.is_none());
        assert_eq!(parsed(&["watchdog"]).1.verbosity, Verbosity::Normal);
    }

    #[test]
    fn each_subcommand_keeps_its_arguments() {
        assert_eq!(
            parsed(&["watchdog", "fds", "--top", "5"]).0,
            Command::Fds { top: 5 }
        );
        assert_eq!(
            parsed(&["watchdog", "config", "--check"]).0,
            Command::Config { check_only: true }
        );
        for (flag, step) in [
            (None, schedule::Step::Print),
            (Some("--install"), schedule::Step::Install),
            (Some("--uninstall"), schedule::Step::Uninstall),
        ] {
            let mut args = vec!["watchdog", "schedule", "systemd"];
            args.extend(flag);
            assert_eq!(
                parsed(&args).0,
                Command::Schedule {
                    kind: schedule::ScheduleKind::Systemd,
                    step,
                    every: schedule::DEFAULT_EVERY,
                },
                "{args:?}"
            );
        }
        assert_eq!(
            parsed(&["watchdog", "schedule", "launchd", "--every", "30s"]).0,
            Command::Schedule {
                kind: schedule::ScheduleKind::Launchd,
                step: schedule::Step::Print,
                every: std::time::Duration::from_secs(30),
            }
        );
    }

    #[test]
    fn the_overrides_are_the_flags_given() {
        let cli = Cli::try_parse_from(["watchdog", "--port", "9000", "--max-fds", "10"]).unwrap();
        let o = overrides(&cli.options);
        assert_eq!(
            (o.port, o.max_fds, o.url.is_none()),
            (Some(9000), Some(10), true)
        );
    }
}
