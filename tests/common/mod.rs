//! Test harness for watchdog's end-to-end tests: real processes, real signals, real
//! supervisors, each ended by a guard when its test ends, also when it fails.
//!
//! Everything a test touches lives in one temporary directory ([`TestEnv`]), and every
//! process a test starts has an owner that ends it on drop: [`TestServer`] and
//! [`TestEnv`] the test servers (found by their env's PID log on their command line,
//! never by a bare PID that may have been reused), [`ChildGuard`] and [`Running`] any
//! other helper (its whole process group), [`GracefulChild`] a supervisor daemon.
//!
//! One file per concern; a test file says `use common::*;` and finds every name here:
//!
//! | file | holds |
//! |---|---|
//! | `env.rs` | [`TestEnv`]: the temp dir and the paths in it |
//! | `config.rs` | [`ConfigToml`]: the config file a test writes; durations; key positions |
//! | `run.rs` | running the watchdog (or any command) bounded: [`Running`], [`RunResult`] |
//! | `records.rs` | what a run leaves: the JSON report, the log, `history.json` |
//! | `assertions.rs` | what a run did: exit code, log shape, nothing done, a restart |
//! | `server.rs` | [`TestServer`] (`tests/support/testserver.py`) and its controls |
//! | `http.rs` | [`http_get`], a bounded HTTP/1.1 GET; [`free_port`] |
//! | `processes.rs` | [`ChildGuard`], [`GracefulChild`], [`kill_strays`], [`wait_until`] |
//! | `proc.rs` | facts about a process: from /proc on Linux, from ps/lsof elsewhere |
//! | `ps_lsof.rs` | the same facts from ps(1) and lsof(8), on Linux and macOS alike |
//! | `census.rs` | the FD census the test computes from /proc itself (the oracle; Linux) |
//! | `users.rs` | root against other users: [`SERVER_USER`], [`ATTACKER`], [`Witness`] |
//! | `tools.rs` | [`Tools`]: recording wrappers on the watchdog's PATH; shell words |
//! | `supervisors.rs` | a real supervisord ([`Supervisord`]) and runsv ([`Runsv`]) (Linux) |
//! | `fake_supervisor.rs` | [`FakeSupervisor`], the launchctl/systemctl stand-in |

// Every test file compiles this harness as its own module and uses a different part of
// it, so in each test binary some of it is unused.
#![allow(dead_code)]

mod assertions;
#[cfg(target_os = "linux")]
mod census;
mod config;
mod env;
mod fake_supervisor;
mod http;
mod proc;
mod processes;
mod ps_lsof;
mod records;
mod run;
mod server;
#[cfg(target_os = "linux")]
mod supervisors;
mod tools;
mod users;

// A test binary that uses nothing from one of the files leaves its glob unused.
#[allow(unused_imports)]
pub use self::{
    assertions::*, config::*, env::*, fake_supervisor::*, http::*, proc::*, processes::*,
    ps_lsof::*, records::*, run::*, server::*, tools::*, users::*,
};
#[cfg(target_os = "linux")]
#[allow(unused_imports)]
pub use self::{census::*, supervisors::*};
