//! The bound on one run (docs/DESIGN.md, "Invariants"). Every wait in the run takes the
//! smaller of its own timeout and what is left of the run's bound, so a server that accepts
//! and never answers, or a command that hangs, cannot stretch a run. What no wait can
//! bound (a system call that does not return) [`failsafe`] ends: the run's bound plus
//! [`failsafe::GRACE`], armed by `src/main.rs`.

use std::time::{Duration, Instant};

use crate::config::Config;

pub mod failsafe;

/// Slack for the work between the bounded waits (reading /proc, writing the log).
const SLACK: Duration = Duration::from_secs(5);
const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// attempts × timeout + (attempts − 1) × interval + 2 × stop_timeout +
/// command_timeout + verify_timeout + notifiers × notify.timeout + 5 s, saturating: a
/// config of absurd values gets a bound that never arrives, not a panic. Each configured
/// notifier (`command`, `webhook`, `heartbeat_url`) has `notify.timeout` for all it
/// sends in one run (src/notify.rs).
pub fn run_bound(cfg: &Config) -> Duration {
    let attempts = cfg.health.attempts.max(1);
    [
        cfg.health.timeout.saturating_mul(attempts),
        cfg.health.interval.saturating_mul(attempts - 1),
        cfg.restart.stop_timeout.saturating_mul(2),
        cfg.restart.command_timeout,
        cfg.restart.verify_timeout,
        cfg.notify.timeout.saturating_mul(cfg.notify.notifiers()),
        SLACK,
    ]
    .into_iter()
    .fold(Duration::ZERO, Duration::saturating_add)
}

#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    end: Instant,
}

impl Deadline {
    pub fn after(limit: Duration) -> Deadline {
        let now = Instant::now();
        Deadline {
            // Past what an Instant can hold, a century is as good as forever.
            end: now
                .checked_add(limit)
                .or_else(|| now.checked_add(CENTURY))
                .unwrap_or(now),
        }
    }

    pub fn remaining(&self) -> Duration {
        self.end.saturating_duration_since(Instant::now())
    }

    pub fn passed(&self) -> bool {
        self.remaining().is_zero()
    }

    /// The smaller of `limit` and what is left.
    pub fn cap(&self, limit: Duration) -> Duration {
        limit.min(self.remaining())
    }

    /// A deadline `limit` from now, but never later than this one.
    pub fn sub(&self, limit: Duration) -> Deadline {
        Deadline::after(self.cap(limit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bound_follows_the_spec_formula() {
        let mut cfg = crate::config::defaults(None);
        cfg.health.attempts = 3;
        cfg.health.timeout = Duration::from_secs(5);
        cfg.health.interval = Duration::from_secs(2);
        cfg.restart.stop_timeout = Duration::from_secs(10);
        cfg.restart.command_timeout = Duration::from_secs(30);
        cfg.restart.verify_timeout = Duration::from_secs(60);
        // 15 + 4 + 20 + 30 + 60 + 5
        assert_eq!(run_bound(&cfg), Duration::from_secs(134));
        // Each configured notifier adds its timeout.
        cfg.notify.timeout = Duration::from_secs(4);
        cfg.notify.command = Some("true".into());
        cfg.notify.heartbeat_url = Some("http://127.0.0.1:9/ping".into());
        assert_eq!(run_bound(&cfg), Duration::from_secs(142));
        cfg.notify.webhook = Some("http://127.0.0.1:9/hook".into());
        assert_eq!(run_bound(&cfg), Duration::from_secs(146));
    }

    #[test]
    fn absurd_timeouts_saturate_instead_of_panicking() {
        let mut cfg = crate::config::defaults(None);
        cfg.health.timeout = Duration::from_millis(18_446_744_073_709_551);
        cfg.health.attempts = 4_000_000;
        assert_eq!(run_bound(&cfg), Duration::MAX);
        let forever = Deadline::after(run_bound(&cfg));
        assert!(forever.remaining() > Duration::from_secs(365 * 24 * 3600));
        assert!(!forever.passed());
    }

    #[test]
    fn sub_deadlines_never_outlive_their_parent() {
        let parent = Deadline::after(Duration::from_millis(50));
        assert!(parent.sub(Duration::from_secs(60)).remaining() <= Duration::from_millis(50));
        assert_eq!(
            parent.cap(Duration::from_millis(1)),
            Duration::from_millis(1)
        );
    }
}
