//! The tools on the watchdog's PATH: [`Tools`], a directory put first on PATH for the
//! watchdog runs, with wrappers that record every call before running the real tool
//! (what the watchdog really asked, whatever its report says); and shell words, scripts
//! and executables.

use std::fs;
use std::path::{Path, PathBuf};

use super::env::TestEnv;
use super::run::{RunResult, WATCHDOG_TIMEOUT, run_with_timeout, watchdog_cmd};
use super::server::python;

/// A directory of tools prepended to PATH for the watchdog runs, and the record of the
/// calls their recording wrappers saw.
pub struct Tools {
    pub bin: PathBuf,
    pub calls: PathBuf,
}

impl Tools {
    pub fn new(env: &TestEnv) -> Tools {
        let bin = env.root.join("bin");
        let calls = env.root.join("calls");
        fs::create_dir_all(&bin).unwrap();
        fs::create_dir_all(&calls).unwrap();
        Tools { bin, calls }
    }

    /// PATH for the watchdog: this directory first.
    pub fn path(&self) -> String {
        let rest = std::env::var("PATH").unwrap_or_default();
        format!("{}:{rest}", self.bin.display())
    }

    /// Installs `name` as the shell script `script`, recording nothing.
    pub fn install(&self, name: &str, script: &str) {
        write_script(&self.bin.join(name), script);
    }

    /// Installs `name` as a wrapper that appends its arguments (one call a line) to its
    /// calls file, then runs `then` (shell text): what the watchdog really asked, whatever
    /// its report says.
    pub fn install_recording(&self, name: &str, then: &str) {
        let calls = self.calls.join(name);
        self.install(
            name,
            &format!(
                "#!/bin/sh\nprintf '%s\\n' \"$*\" >>{}\n{then}\n",
                sh_quote(&calls.display().to_string())
            ),
        );
    }

    /// [`Tools::install_recording`] that then execs `real` (shell words, already quoted)
    /// with the same arguments.
    pub fn install_wrapper(&self, name: &str, real: &str) {
        self.install_recording(name, &format!("exec {real} \"$@\""));
    }

    /// supervisorctl for the watchdog: the real one, run through the same interpreter the
    /// tests use (a pip install under pyenv puts no command on PATH until `pyenv rehash`),
    /// behind a wrapper that records every call ([`Tools::take_calls`]).
    pub fn install_supervisorctl(&self) {
        self.install_wrapper(
            "supervisorctl",
            &format!("{} -m supervisor.supervisorctl", sh_quote(python())),
        );
    }

    /// A command that starts supervisord from this directory, as pip installs it (a
    /// script whose `#!` names the interpreter): the watchdog looks for supervisorctl
    /// beside the supervisord that runs the job before PATH, so with
    /// [`Tools::install_supervisorctl`] it finds the recording wrapper there.
    pub fn supervisord_launcher(&self) -> std::process::Command {
        let script = self.bin.join("supervisord");
        write_script(
            &script,
            &format!(
                "#!{}\nimport sys\nfrom supervisor.supervisord import main\nsys.exit(main())\n",
                python()
            ),
        );
        std::process::Command::new(script)
    }

    /// The arguments of every call the wrapper `name` recorded, one call each; the record
    /// is then cleared.
    pub fn take_calls(&self, name: &str) -> Vec<String> {
        let path = self.calls.join(name);
        let text = fs::read_to_string(&path).unwrap_or_default();
        let _ = fs::remove_file(&path);
        text.lines().map(String::from).collect()
    }

    /// Runs the watchdog with this PATH.
    pub fn watchdog(&self, env: &TestEnv, args: &[&str]) -> RunResult {
        let mut cmd = watchdog_cmd(env, args);
        cmd.env("PATH", self.path());
        run_with_timeout(cmd, WATCHDOG_TIMEOUT)
    }
}

/// `argv` as shell words (and as supervisord's shlex-split `command`).
pub fn sh_words(argv: &[String]) -> String {
    let words: Vec<String> = argv.iter().map(|a| sh_quote(a)).collect();
    words.join(" ")
}

/// The first executable named `name` on PATH or in `extra` directories.
pub fn find_executable(name: &str, extra: &[&str]) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(extra.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

/// Writes an executable shell script.
pub fn write_script(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).expect("chmod script");
}

/// `text` quoted for /bin/sh (and for supervisord's shlex-split `command`).
pub fn sh_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// Runs `python3 -c program args...` with `input` on stdin: its stdout, or a panic with
/// its stderr.
pub fn python3_output(program: &str, args: &[&Path], input: &str) -> String {
    use std::io::Write as _;
    let python = find_executable("python3", &[])
        .expect("python3 is not installed: run script/bootstrap, or apt-get install python3");
    let mut child = std::process::Command::new(python)
        .arg("-c")
        .arg(program)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "python3 failed: {}\n{input}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
