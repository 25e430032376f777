//! The health probe (SPEC §5.2): bounded HTTP GETs against `health.url`.

use std::time::Duration;

use crate::config::HealthConfig;

/// One GET of the health URL.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Attempt {
    pub ok: bool,
    pub status: Option<u16>,
    pub latency_ms: Option<u64>,
    /// Why the attempt failed, in words an operator can act on.
    pub error: Option<String>,
}

/// The outcome of all attempts: healthy as soon as one attempt passes.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HealthResult {
    pub ok: bool,
    /// From the last attempt made.
    pub status: Option<u16>,
    pub latency_ms: Option<u64>,
    pub error: Option<String>,
    pub attempts: Vec<Attempt>,
    /// The body of the passing attempt parsed as JSON, when it was JSON.
    #[serde(skip)]
    pub json: Option<serde_json::Value>,
}

pub struct Prober {
    _cfg: HealthConfig,
}

impl Prober {
    pub fn new(cfg: &HealthConfig) -> Self {
        Prober { _cfg: cfg.clone() }
    }

    /// Up to `attempts` GETs, `interval` apart, stopping at the first that passes.
    pub fn check(&self) -> HealthResult {
        todo!()
    }

    /// One GET bounded by `timeout` as a whole (connect, headers and body).
    pub fn attempt(&self, _timeout: Duration) -> (Attempt, Option<serde_json::Value>) {
        todo!()
    }
}
