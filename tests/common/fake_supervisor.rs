//! The launchd and systemd stand-in: tests/support/fake_supervisor.py installed as
//! `launchctl` or `systemctl` on the watchdog's PATH ([`FakeSupervisor`]), as neither
//! launchd nor a systemd PID 1 can run on the test machine. It records every call and
//! answers like the real tool from its job and a captured fixture
//! (tests/fixtures/launchctl/). Only these two are stand-ins: supervisord and runit are
//! real (`supervisors.rs`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use super::env::TestEnv;
use super::run::run_with_timeout;
use super::server::{python, testserver_argv};
use super::tools::{Tools, sh_quote};

/// The launchd and systemd stand-in (tests/support/fake_supervisor.py): its state
/// directory, and its `launchctl`/`systemctl` wrappers on the watchdog's PATH. It
/// records every call and answers like the real tool from its job and fixture.
pub struct FakeSupervisor {
    pub state: PathBuf,
}

impl FakeSupervisor {
    /// Installs the stand-in as each of `names` in `tools`. `job` holds the label or
    /// unit (and optionally `domain`, `argv`, `fixture`: by default the test server
    /// and `running.txt`); the server gets `server_env` added to its environment.
    pub fn new(
        env: &TestEnv,
        tools: &Tools,
        names: &[&str],
        mut job: Value,
        server_env: Value,
    ) -> FakeSupervisor {
        let state = env.root.join("fake-supervisor");
        fs::create_dir_all(&state).unwrap();
        if job.get("argv").is_none() {
            job["argv"] = serde_json::json!(testserver_argv(env));
        }
        job["env"] = server_env;
        job["cwd"] = env.root.display().to_string().into();
        job["log"] = env.root.join("job.log").display().to_string().into();
        if job.get("fixture").is_none() {
            job["fixture"] = launchctl_fixture("running.txt").into();
        }
        fs::write(state.join("job.json"), job.to_string()).unwrap();
        for tool in names {
            tools.install(
                tool,
                &format!(
                    "#!/bin/sh\nexec {} {} --state {} {tool} \"$@\"\n",
                    sh_quote(python()),
                    sh_quote(&fake_supervisor_script().display().to_string()),
                    sh_quote(&state.display().to_string()),
                ),
            );
        }
        FakeSupervisor { state }
    }

    /// Starts the job's server as the supervisor would; returns its PID.
    pub fn start_job(&self) -> u32 {
        let mut cmd = Command::new(python());
        cmd.arg(fake_supervisor_script())
            .arg("--state")
            .arg(&self.state)
            .arg("start");
        let r = run_with_timeout(cmd, Duration::from_secs(20));
        assert_eq!(r.status, Some(0), "{}", r.dump());
        r.stdout.trim().parse().expect("started PID")
    }

    /// The PID the stand-in's job runs now.
    pub fn job_pid(&self) -> Option<u32> {
        fs::read_to_string(self.state.join("job.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Every recorded call (the tool, then its arguments), one per line; the record is
    /// then cleared.
    pub fn take_calls(&self) -> Vec<String> {
        let path = self.state.join("calls.log");
        let text = fs::read_to_string(&path).unwrap_or_default();
        let _ = fs::remove_file(&path);
        text.lines().map(String::from).collect()
    }
}

pub fn fake_supervisor_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/fake_supervisor.py")
}

/// The path of the captured `launchctl` output `name` in tests/fixtures/launchctl/.
pub fn launchctl_fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/launchctl")
        .join(name)
        .display()
        .to_string()
}
