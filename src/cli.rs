//! The command line (docs/DESIGN.md, "Command line"), the only user of clap: the
//! definitions and nothing else. `src/main.rs` turns what is parsed here into the plain
//! values of `src/commands/` and the config overrides. Every option shared by the
//! subcommands overrides the config file; `watchdog` alone is `watchdog check`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const ABOUT: &str = "Keeps a long-running local web server alive, one check per run.";

const LONG_ABOUT: &str = "\
Keeps a long-running local web server alive, one check per run.

Run it every minute from cron, a launchd StartInterval job or a systemd timer. Each run
finds the server process (pidfile, the process LISTENing on the port, or a command-line
match), checks its /health URL with a hard timeout, counts its open file descriptors,
and when a limit is crossed restarts it (or asks its supervisor to), logging every
decision. A healthy run prints nothing, so cron sends no mail.

Without a config file it watches Hermes WebUI on http://127.0.0.1:8787/health.
Start with `watchdog status` to see what it sees, then `watchdog check --dry-run`.";

/// `--help`'s closing text: the exit codes, from `src/exit_code.rs`, then an example.
fn after_help() -> String {
    format!(
        "{}\nExample crontab line:\n  * * * * * /usr/local/bin/watchdog check",
        crate::exit_code::help_text(78)
    )
}

#[derive(Debug, Parser)]
#[command(
    name = "watchdog",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = after_help(),
    args_conflicts_with_subcommands = false
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub options: Options,
    // Prints a completion script or the man page, generated from these definitions
    // (src/commands/generate.rs). Hidden from `--help`, as ripgrep's: packagers and
    // README's install steps use it, not the daily run. It conflicts with every option
    // but `--config`, which WATCHDOG_CONFIG may set from the environment (clap counts
    // that as given); src/main.rs refuses a subcommand beside it.
    #[arg(
        long,
        value_enum,
        value_name = "KIND",
        hide = true,
        help = "Print the man page or a shell completion script, and exit",
        conflicts_with_all = [
            "url", "port", "pidfile", "pid", "match_", "max_fds", "dry_run", "json",
            "verbose", "quiet",
        ]
    )]
    pub generate: Option<GenerateArg>,
}

/// What `--generate` prints: ripgrep's names, so packagers find what they know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GenerateArg {
    Man,
    CompleteBash,
    CompleteZsh,
    CompleteFish,
    CompletePowershell,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one cycle: observe, decide, act, record (the default).
    ///
    /// Prints nothing when healthy (use -v to see the reading). Problems and actions go
    /// to stderr, which cron mails, and to the log file.
    Check,
    /// Observe and decide, print a readable report; never acts.
    ///
    /// Exits as `check --dry-run` would: 0 healthy, 4 if `check` would act or is held
    /// back.
    Status,
    /// FD census of the target: total, limit, counts by kind, top paths.
    ///
    /// The replacement for `lsof -p PID | sort | uniq -c | sort -rn | head`.
    Fds {
        /// How many paths to list.
        #[arg(long, value_name = "N", default_value_t = 20)]
        top: usize,
    },
    /// Print the effective configuration as TOML (defaults, file and flags merged).
    Config {
        /// Only validate the configuration; exit 2 with file:line:column if it is wrong.
        #[arg(long)]
        check: bool,
    },
    /// Print, install or remove the job that runs `watchdog check` every minute (or --every).
    Schedule {
        #[arg(value_enum)]
        kind: ScheduleArg,
        /// How often the job runs: 60s by default; launchd and systemd take seconds
        /// from 10s up (e.g. 30s), cron whole minutes that divide an hour (1m, 5m).
        /// Shorter finds a wedged server sooner, for more load and log churn.
        #[arg(long, value_name = "DURATION", value_parser = crate::units::parse_duration, conflicts_with = "uninstall")]
        every: Option<std::time::Duration>,
        /// Install the job instead of printing it: a line in your crontab, a
        /// LaunchAgent bootstrapped into gui/UID, or systemd user units with the timer
        /// enabled. Running it again changes nothing.
        #[arg(long, conflicts_with = "uninstall")]
        install: bool,
        /// Remove what --install added (the crontab line, the LaunchAgent, the user
        /// units), leaving the rest of the crontab as it was.
        #[arg(long)]
        uninstall: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScheduleArg {
    Cron,
    Launchd,
    Systemd,
}

#[derive(Debug, Args)]
pub struct Options {
    /// Config file [default: $XDG_CONFIG_HOME/watchdog/watchdog.toml, then
    /// /etc/watchdog/watchdog.toml; none at all is fine]
    #[arg(
        short,
        long,
        value_name = "FILE",
        env = "WATCHDOG_CONFIG",
        global = true
    )]
    pub config: Option<PathBuf>,

    /// Health URL to probe (overrides health.url), e.g. http://127.0.0.1:8787/health
    #[arg(long, value_name = "URL", global = true)]
    pub url: Option<String>,

    /// TCP port the server LISTENs on (overrides target.port; default: the URL's port)
    #[arg(long, value_name = "N", global = true)]
    pub port: Option<u16>,

    /// PID file naming the server (overrides target.pidfile)
    #[arg(long, value_name = "FILE", global = true)]
    pub pidfile: Option<PathBuf>,

    /// The server's PID, instead of the pidfile
    #[arg(long, value_name = "N", global = true)]
    pub pid: Option<u32>,

    /// Text the server's command line contains, e.g. "server.py" (overrides target.match)
    #[arg(long = "match", value_name = "TEXT", global = true)]
    pub match_: Option<String>,

    /// Restart at or above this many open FDs (overrides fds.max)
    #[arg(long, value_name = "N", global = true)]
    pub max_fds: Option<u64>,

    /// Decide and report, but touch nothing (exit 4 where a real run would act)
    #[arg(long, global = true)]
    pub dry_run: bool,

    /// Print exactly one JSON document on stdout (the report) and nothing else there
    #[arg(long, global = true)]
    pub json: bool,

    /// Also print healthy readings on stderr
    #[arg(short, long, global = true, conflicts_with = "quiet")]
    pub verbose: bool,

    /// Print only errors on stderr
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    use clap::CommandFactory;

    #[test]
    fn the_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn check_is_the_default_and_options_go_anywhere() {
        let cli = Cli::try_parse_from(["watchdog", "--dry-run"]).unwrap();
        assert!(cli.command.is_none());
        assert!(cli.options.dry_run);
        let cli = Cli::try_parse_from(["watchdog", "status", "--json", "--pid", "42"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Status)));
        assert_eq!(cli.options.pid, Some(42));
        assert!(cli.options.json);
        let cli = Cli::try_parse_from(["watchdog", "--port", "9000", "fds", "--top", "5"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Fds { top: 5 })));
        assert_eq!(cli.options.port, Some(9000));
    }

    #[test]
    fn generate_is_hidden_and_takes_ripgreps_kinds() {
        let cli = Cli::try_parse_from(["watchdog", "--generate", "complete-zsh"]).unwrap();
        assert_eq!(cli.generate, Some(GenerateArg::CompleteZsh));
        assert!(cli.command.is_none());
        let help = Cli::command().render_long_help().to_string();
        assert!(!help.contains("--generate"), "{help}");
    }

    #[test]
    fn bad_values_are_usage_errors() {
        for args in [
            vec!["watchdog", "--port", "70000"],
            vec!["watchdog", "--pid", "-3"],
            vec!["watchdog", "-v", "-q"],
            vec!["watchdog", "schedule", "anacron"],
            vec!["watchdog", "--generate", "complete-tcsh"],
            vec!["watchdog", "--generate", "man", "--dry-run"],
        ] {
            let err = Cli::try_parse_from(&args).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}");
        }
    }
}
