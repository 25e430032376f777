//! watchdog: one cycle of observe → decide → act → record per invocation.
//!
//! - observe: [`probe`]: [`probe::discover`] finds the server, the other probes read its
//!   health, FDs and files;
//! - decide: [`decide`] is a pure function of the observation, config and history;
//! - act: [`act`] is the only code that signals, spawns or runs a restart command;
//! - record: [`log`], [`history`], [`incident`], [`report`], [`notify`].
//!
//! [`commands`] holds one file per subcommand (`check` strings the four together,
//! `status` stops after deciding). Below them all: [`units`], [`exit_code`], [`users`],
//! [`safe_fs`], then [`config`], then the run's means ([`deadline`] with its
//! [`deadline::failsafe`], [`command`], [`lock`]). `.ci/layers` declares this order
//! and fails CI on an import that goes against it or closes a circle.

pub mod act;
pub mod cli;
pub mod command;
pub mod commands;
pub mod config;
pub mod deadline;
pub mod decide;
pub mod exit_code;
pub mod history;
pub mod incident;
pub mod lock;
pub mod log;
pub mod metrics;
pub mod notify;
pub mod probe;
pub mod report;
pub mod safe_fs;
pub mod trend;
pub mod units;
pub mod users;

#[cfg(test)]
mod proptests;
