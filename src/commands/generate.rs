//! `watchdog --generate KIND`: the man page and the shell completion scripts, generated
//! from the command-line definition (`src/cli.rs`) so that they cannot drift from it, as
//! ripgrep's `rg --generate` does. README says where each output is installed.
//!
//! The one part of `src/commands/` that takes a clap type: its input is the definition
//! itself (`clap::Command`), which `src/main.rs` hands over.

use std::fmt::Write as _;
use std::io::Write as _;

use clap_complete::Shell;

use crate::exit_code::ExitCode;

/// What to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The man page, `watchdog.1` (roff).
    Man,
    Bash,
    Zsh,
    Fish,
    PowerShell,
}

/// The name the scripts complete and the man page is filed under.
const BIN: &str = "watchdog";

/// Prints `kind` for the command line `cmd` on stdout. Exit 0; 2 if stdout cannot be
/// written (nothing else was touched).
pub fn run(kind: Kind, cmd: clap::Command) -> ExitCode {
    let text = render(kind, cmd);
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(&text).and_then(|()| stdout.flush()) {
        Ok(()) => ExitCode::Healthy,
        Err(e) => {
            eprintln!("watchdog: cannot write the generated {kind:?} to stdout: {e}");
            ExitCode::Usage
        }
    }
}

/// The generated text.
pub fn render(kind: Kind, mut cmd: clap::Command) -> Vec<u8> {
    let shell = match kind {
        Kind::Man => return man_page(cmd).into_bytes(),
        Kind::Bash => Shell::Bash,
        Kind::Zsh => Shell::Zsh,
        Kind::Fish => Shell::Fish,
        Kind::PowerShell => Shell::PowerShell,
    };
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, BIN, &mut out);
    out
}

/// clap_mangen's title, name, synopsis, description and options, then what it would
/// leave to one page per subcommand written here on the one page: each subcommand with
/// its own arguments, and the exit codes from `src/exit_code.rs` (the `--help` text has
/// them as plain text; here they are a table). No date: the page is the same for the
/// same build.
fn man_page(cmd: clap::Command) -> String {
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let man = clap_mangen::Man::new(cmd.clone()).manual("User Commands");
    let mut head = Vec::new();
    // Writing to a Vec cannot fail.
    let _ = man
        .render_title(&mut head)
        .and_then(|()| man.render_name_section(&mut head))
        .and_then(|()| man.render_synopsis_section(&mut head))
        .and_then(|()| man.render_description_section(&mut head))
        .and_then(|()| man.render_options_section(&mut head));
    let mut page = String::from_utf8_lossy(&head).into_owned();
    page.push_str(&commands_section(&cmd));
    page.push_str(&exit_status_section());
    page.push_str(&generate_section());
    page
}

/// `.SH COMMANDS`: every subcommand, its usage, its long help and its own arguments
/// (the shared options are in OPTIONS above).
fn commands_section(cmd: &clap::Command) -> String {
    let mut out = String::from(".SH COMMANDS\n");
    for sub in cmd.get_subcommands() {
        let _ = writeln!(out, ".SS \"{BIN} {}\"", sub.get_name());
        let mut usage = format!("{BIN} {}", sub.get_name());
        for arg in sub.get_positionals() {
            let values: Vec<String> = arg
                .get_possible_values()
                .iter()
                .map(|v| v.get_name().to_string())
                .collect();
            let _ = write!(usage, " {}", values.join("|"));
        }
        for arg in own_options(sub) {
            let _ = write!(usage, " [{}]", option_words(arg));
        }
        let _ = writeln!(out, "\\fB{}\\fR", escape(&usage));
        if sub.get_name() == "check" {
            let _ = writeln!(
                out,
                ".br\n(the default: \\fB{BIN}\\fR with no subcommand runs it)"
            );
        }
        let about = sub
            .get_long_about()
            .or_else(|| sub.get_about())
            .map(|s| s.to_string())
            .unwrap_or_default();
        for paragraph in about.split("\n\n") {
            let _ = writeln!(out, ".PP\n{}", escape(paragraph.trim()));
        }
        let options: Vec<&clap::Arg> = own_options(sub).collect();
        if !options.is_empty() {
            out.push_str(".RS\n");
            for arg in options {
                let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
                let _ = writeln!(
                    out,
                    ".TP\n\\fB{}\\fR\n{}",
                    escape(&option_words(arg)),
                    escape(&help)
                );
            }
            out.push_str(".RE\n");
        }
    }
    out
}

/// A subcommand's own named arguments: not the shared (global) options, not `--help`.
fn own_options(sub: &clap::Command) -> impl Iterator<Item = &clap::Arg> {
    sub.get_arguments().filter(|a| {
        !a.is_positional() && !a.is_global_set() && !a.is_hide_set() && a.get_id() != "help"
    })
}

/// `--top N`, `--install`.
fn option_words(arg: &clap::Arg) -> String {
    let mut words = match arg.get_long() {
        Some(long) => format!("--{long}"),
        None => format!("-{}", arg.get_short().unwrap_or('?')),
    };
    if arg.get_action().takes_values()
        && let Some(names) = arg.get_value_names()
    {
        for name in names {
            let _ = write!(words, " {name}");
        }
    }
    words
}

/// `.SH "EXIT STATUS"`: `ExitCode::ALL`, each with its meaning (`code` spans in bold).
fn exit_status_section() -> String {
    let mut out = String::from(".SH \"EXIT STATUS\"\n");
    for code in ExitCode::ALL {
        let mut meaning = String::new();
        for (i, part) in escape(code.meaning()).split('`').enumerate() {
            if i % 2 == 1 {
                let _ = write!(meaning, "\\fB{part}\\fR");
            } else {
                meaning.push_str(part);
            }
        }
        let _ = writeln!(out, ".TP\n\\fB{}\\fR\n{meaning}", code.code());
    }
    out
}

/// Where the page and the completions come from, so a packager can regenerate them.
fn generate_section() -> String {
    format!(
        ".SH \"GENERATED FILES\"\n\
         This page and the shell completions are printed by the binary itself:\n\
         .PP\n\
         \\fB{BIN} \\-\\-generate\\fR \
         \\fIman\\fR|\\fIcomplete\\-bash\\fR|\\fIcomplete\\-zsh\\fR|\\fIcomplete\\-fish\\fR|\\fIcomplete\\-powershell\\fR\n"
    )
}

/// Text for a roff line: backslashes escaped, hyphens as `\-` (an option's minus, not a
/// typographic hyphen), and a line that starts with `.` or `'` kept from being read as
/// a request.
fn escape(text: &str) -> String {
    text.replace('\\', "\\e")
        .replace('-', "\\-")
        .lines()
        .map(|line| {
            if line.starts_with('.') || line.starts_with('\'') {
                format!("\\&{line}")
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_keeps_text_from_being_read_as_requests() {
        assert_eq!(
            escape(".hidden\n'quote\nplain"),
            "\\&.hidden\n\\&'quote\nplain"
        );
        assert_eq!(escape("a\\b --top"), "a\\eb \\-\\-top");
    }

    #[test]
    fn exit_status_has_every_code_with_spans_in_bold() {
        let section = exit_status_section();
        for code in ExitCode::ALL {
            assert!(
                section.contains(&format!(".TP\n\\fB{}\\fR\n", code.code())),
                "{section}"
            );
        }
        assert!(section.contains("\\fBverify_timeout\\fR"), "{section}");
        assert!(!section.contains('`'), "{section}");
    }
}
