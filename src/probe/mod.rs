//! Observation: everything read about the target in one run. No side effects on it.

pub mod health;
pub mod os;
