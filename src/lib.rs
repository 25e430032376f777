//! watchdog: one cycle of observe → decide → act → record per invocation.

pub mod config;
pub mod probe;
pub mod target;
