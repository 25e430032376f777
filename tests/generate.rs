//! `watchdog --generate KIND` (src/commands/generate.rs): the completion scripts and the
//! man page, checked by the programs that read them. bash sources the script and its
//! completion function answers a real COMP_WORDS; zsh parses its script (`zsh -n`); groff
//! renders the page with every warning on, and the rendered text has every subcommand,
//! their own options and every exit code with its meaning (src/exit_code.rs).

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{RunResult, WATCHDOG_TIMEOUT, find_executable, run_with_timeout, watchdog_bin};
use watchdog::exit_code::ExitCode;

/// The subcommands `--help` lists (clap's own `help` aside): a new one is checked
/// without this file changing.
fn subcommands() -> Vec<String> {
    let help = run(Command::new(watchdog_bin()).arg("--help"));
    assert_eq!(help.status, Some(0), "{}", help.dump());
    let names: Vec<String> = help
        .stdout
        .split("Commands:\n")
        .nth(1)
        .expect("--help has a Commands: list")
        .lines()
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(String::from)
        .collect();
    for expected in ["check", "status", "fds", "config", "schedule"] {
        assert!(names.iter().any(|n| n == expected), "{expected}: {names:?}");
    }
    names
}

fn run(cmd: &mut Command) -> RunResult {
    let mut owned = Command::new(cmd.get_program());
    owned.args(cmd.get_args());
    run_with_timeout(owned, WATCHDOG_TIMEOUT)
}

/// `watchdog --generate kind`, which must succeed with output; written into `dir`.
fn generated(dir: &Path, kind: &str) -> (PathBuf, String) {
    let out = run(Command::new(watchdog_bin()).args(["--generate", kind]));
    assert_eq!(out.status, Some(0), "{}", out.dump());
    assert!(out.stderr.is_empty(), "{}", out.dump());
    assert!(!out.stdout.trim().is_empty(), "{kind}: empty");
    let path = dir.join(kind);
    fs::write(&path, &out.stdout).unwrap();
    (path, out.stdout)
}

/// `name` on PATH; missing is a failure that names the install, never a skip (the
/// tests that need a tool a fresh machine lacks are `#[ignore]`d with it).
fn tool(name: &str, package: &str) -> PathBuf {
    find_executable(name, &[]).unwrap_or_else(|| {
        panic!("{name} is not installed: run script/bootstrap, or apt-get install {package}")
    })
}

/// Sources the script in a clean bash and asks its function to complete `words` (the
/// last one being completed); the candidates, one a line.
fn bash_complete(script: &Path, words: &[&str]) -> Vec<String> {
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let program = format!(
        "set -u; source '{script}'; COMP_WORDS=({words}); COMP_CWORD={cword}; \
         COMP_LINE='{line}'; COMP_POINT=${{#COMP_LINE}}; \
         _watchdog watchdog '{cur}' '{prev}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script = script.display(),
        words = quoted.join(" "),
        cword = words.len() - 1,
        line = words.join(" "),
        cur = words[words.len() - 1],
        prev = words[words.len() - 2],
    );
    let out =
        run(Command::new(tool("bash", "bash")).args(["--norc", "--noprofile", "-c", &program]));
    assert_eq!(out.status, Some(0), "{}", out.dump());
    out.stdout.lines().map(String::from).collect()
}

#[test]
fn bash_completion_is_valid_bash_and_completes_the_subcommands() {
    let dir = tempfile::tempdir().unwrap();
    let (script, _) = generated(dir.path(), "complete-bash");
    let syntax = run(Command::new(tool("bash", "bash")).arg("-n").arg(&script));
    assert_eq!(syntax.status, Some(0), "bash -n:\n{}", syntax.dump());

    let first = bash_complete(&script, &["watchdog", ""]);
    for name in subcommands() {
        assert!(first.contains(&name), "{name} not offered: {first:?}");
    }
    let kinds = bash_complete(&script, &["watchdog", "schedule", ""]);
    for kind in ["cron", "launchd", "systemd", "--install", "--uninstall"] {
        assert!(kinds.iter().any(|k| k == kind), "{kind}: {kinds:?}");
    }
    assert_eq!(
        bash_complete(&script, &["watchdog", "fds", "--to"]),
        ["--top"]
    );
    let flags = bash_complete(&script, &["watchdog", "--"]);
    assert!(flags.iter().any(|f| f == "--dry-run"), "{flags:?}");
    // Hidden from --help, but clap_complete offers it, and its kinds.
    let kinds = bash_complete(&script, &["watchdog", "--generate", ""]);
    for kind in ["man", "complete-bash", "complete-zsh", "complete-fish"] {
        assert!(kinds.iter().any(|k| k == kind), "{kind}: {kinds:?}");
    }
}

#[test]
fn fish_and_powershell_scripts_name_every_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let names = subcommands();
    for (kind, marker) in [
        ("complete-fish", "complete -c watchdog"),
        ("complete-powershell", "Register-ArgumentCompleter"),
    ] {
        let (_, text) = generated(dir.path(), kind);
        assert!(text.contains(marker), "{kind}: no {marker:?}");
        for name in &names {
            assert!(text.contains(name.as_str()), "{kind}: no {name}");
        }
    }
}

#[test]
#[cfg_attr(
    target_os = "linux",
    ignore = "needs zsh on Linux (apt-get install zsh; part of macOS): run by script/test --all and .ci/run"
)]
fn zsh_completion_is_valid_zsh_and_names_every_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let (zsh_script, text) = generated(dir.path(), "complete-zsh");
    assert!(text.contains("#compdef watchdog"), "no #compdef:\n{text}");
    for name in subcommands() {
        assert!(text.contains(name.as_str()), "complete-zsh: no {name}");
    }
    let syntax = run(Command::new(tool("zsh", "zsh")).arg("-n").arg(&zsh_script));
    assert_eq!(syntax.status, Some(0), "zsh -n:\n{}", syntax.dump());
}

/// The page as groff renders it for a terminal, plain text (no bold or underline
/// overstrikes), on long lines without hyphenation, typographic dashes and quotes made
/// ASCII again, whitespace collapsed: what the reader sees, comparable to a string.
fn rendered_man_page(page: &Path) -> String {
    let out = run(Command::new(tool("groff", "groff-base"))
        .args(["-man", "-Tutf8", "-ww", "-rLL=200n", "-rHY=0", "-P-cbou"])
        .arg(page));
    assert_eq!(out.status, Some(0), "groff:\n{}", out.dump());
    // -ww: every warning on; a malformed request or escape is one.
    assert!(out.stderr.is_empty(), "groff warned:\n{}", out.stderr);
    out.stdout
        .replace(['\u{2010}', '\u{2212}', '\u{2011}'], "-")
        .replace(['\u{2018}', '\u{2019}'], "'")
        .replace(['\u{201c}', '\u{201d}'], "\"")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

// groff is not part of recent macOS (its man(1) renders with mandoc): ignored on both.
#[test]
#[ignore = "needs groff and man (apt-get install groff-base man-db; macOS: brew install groff): run by script/test --all and .ci/run"]
fn man_page_renders_with_every_subcommand_and_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let (page, source) = generated(dir.path(), "man");
    assert!(
        source.starts_with(".ie ") || source.starts_with(".TH "),
        "{source}"
    );
    let text = rendered_man_page(&page);
    for section in [
        "NAME",
        "SYNOPSIS",
        "DESCRIPTION",
        "OPTIONS",
        "COMMANDS",
        "EXIT STATUS",
    ] {
        assert!(text.contains(section), "no {section} in:\n{text}");
    }
    for name in subcommands() {
        assert!(
            text.contains(&format!("watchdog {name} ")),
            "no watchdog {name} in:\n{text}"
        );
    }
    for own in [
        "watchdog fds [--top N]",
        "watchdog config [--check]",
        "watchdog schedule cron|launchd|systemd [--every DURATION] [--install] [--uninstall]",
        "--max-fds <N>",
        "--dry-run",
    ] {
        assert!(text.contains(own), "no {own:?} in:\n{text}");
    }
    let exit_status = text.split("EXIT STATUS").nth(1).unwrap();
    for code in ExitCode::ALL {
        let meaning = code.meaning().replace('`', "");
        assert!(
            exit_status.contains(&format!("{} {meaning}", code.code())),
            "exit code {} ({meaning}) not in:\n{exit_status}",
            code.code()
        );
    }
    // The same page reads through man(1) as installed pages do.
    let man = tool("man", "man-db");
    let mut cmd = Command::new(man);
    cmd.args(["-l", "-Tutf8"]).arg(&page);
    let shown = run_with_timeout(cmd, WATCHDOG_TIMEOUT);
    assert_eq!(shown.status, Some(0), "man -l:\n{}", shown.dump());
    // Not a terminal: man(1) marks bold as `X\bX` overstrikes; the letters are what count.
    let mut plain = String::new();
    for c in shown.stdout.chars() {
        if c == '\u{8}' {
            plain.pop();
        } else {
            plain.push(c);
        }
    }
    assert!(plain.contains("EXIT STATUS"), "{}", shown.dump());
}

#[test]
fn generate_refuses_a_subcommand_or_an_option_beside_it() {
    for args in [
        &["--generate", "man", "status"][..],
        &["--generate", "man", "--json"],
        &["--generate", "complete-tcsh"],
    ] {
        let out = run(Command::new(watchdog_bin()).args(args));
        assert_eq!(out.status, Some(2), "{args:?}: {}", out.dump());
        assert!(out.stdout.is_empty(), "{args:?}: {}", out.dump());
    }
    // WATCHDOG_CONFIG in the operator's environment does not get in the way, and no
    // configuration is read: the file named does not exist.
    let mut cmd = Command::new(watchdog_bin());
    cmd.args(["--generate", "complete-bash"])
        .env("WATCHDOG_CONFIG", "/nonexistent/watchdog.toml");
    let out = run_with_timeout(cmd, WATCHDOG_TIMEOUT);
    assert_eq!(out.status, Some(0), "{}", out.dump());
    assert!(out.stdout.contains("_watchdog()"), "{}", out.dump());
}
