//! The leak signal: a least-squares fit of the target's FD count over the samples of
//! the last hours, and when it would reach its limit at that rate. Pure arithmetic on
//! the history; no I/O.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One reading of the server's FDs: what the trend fits, and what the history keeps
/// between runs (src/history.rs) and the incident snapshot shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FdSample {
    pub at: u64,
    pub pid: u32,
    pub total: u64,
    #[serde(default)]
    pub patterns: Vec<(String, u64)>,
    /// The most-held paths and their counts, to name the path that grows.
    #[serde(default)]
    pub top: Vec<(String, u64)>,
}

/// Fewer points than this say nothing about a trend.
const MIN_SAMPLES: usize = 3;
/// Nor do points closer together than this: a few FDs of jitter (a request in flight)
/// over seconds would extrapolate to thousands an hour.
const MIN_SPAN: Duration = Duration::from_secs(600);
/// Growth over the samples' span below this many FDs is noise, not a leak.
const MIN_GROWTH: f64 = 5.0;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trend {
    /// Samples of the current process in the window, this run's included.
    pub samples: usize,
    pub window_s: u64,
    pub rate_per_hour: f64,
    /// The FD count at which a restart is due.
    pub limit: u64,
    /// Seconds until `limit` at this rate; `None` when the count is not growing.
    pub projected_s: Option<u64>,
    pub top_growing: Option<Growth>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Growth {
    pub path: String,
    pub delta: i64,
}

impl Growth {
    /// `growing most: /h/state.db (+60)`, as the leak warning and `status` print it.
    pub fn describe(&self) -> String {
        format!("growing most: {} (+{})", self.path, self.delta)
    }
}

/// The trend of `current.pid` over `window` before `current.at`. `history` holds the
/// earlier samples (any PID; others are ignored: a restart starts a new trend).
pub fn compute(
    history: &[FdSample],
    current: &FdSample,
    window: Duration,
    limit: u64,
) -> Option<Trend> {
    let since = current.at.saturating_sub(window.as_secs());
    let mut points: Vec<&FdSample> = history
        .iter()
        .filter(|s| s.pid == current.pid && s.at >= since && s.at <= current.at)
        .collect();
    points.push(current);
    let first = points.iter().map(|p| p.at).min()?;
    if points.len() < MIN_SAMPLES || current.at.saturating_sub(first) < MIN_SPAN.as_secs() {
        return None;
    }
    let mut slope = least_squares_slope(&points)?;
    if (slope * (current.at - first) as f64).abs() < MIN_GROWTH {
        slope = 0.0;
    }
    let rate_per_hour = slope * 3600.0;
    let projected_s = if current.total >= limit {
        Some(0)
    } else if slope > 0.0 {
        Some(((limit - current.total) as f64 / slope).round() as u64)
    } else {
        None
    };
    Some(Trend {
        samples: points.len(),
        window_s: window.as_secs(),
        rate_per_hour,
        limit,
        projected_s,
        top_growing: top_growing(points[0], current),
    })
}

/// FDs per second; `None` when all samples share one instant.
fn least_squares_slope(points: &[&FdSample]) -> Option<f64> {
    let n = points.len() as f64;
    let t0 = points.iter().map(|p| p.at).min()?;
    let xs: Vec<f64> = points.iter().map(|p| (p.at - t0) as f64).collect();
    let ys: Vec<f64> = points.iter().map(|p| p.total as f64).collect();
    let mean_x = xs.iter().sum::<f64>() / n;
    let mean_y = ys.iter().sum::<f64>() / n;
    let sxx: f64 = xs.iter().map(|x| (x - mean_x).powi(2)).sum();
    if sxx == 0.0 {
        return None;
    }
    let sxy: f64 = xs
        .iter()
        .zip(&ys)
        .map(|(x, y)| (x - mean_x) * (y - mean_y))
        .sum();
    Some(sxy / sxx)
}

/// The path whose count grew most between the oldest sample of the window and now.
fn top_growing(oldest: &FdSample, current: &FdSample) -> Option<Growth> {
    current
        .top
        .iter()
        .map(|(path, count)| {
            let before = oldest
                .top
                .iter()
                .find(|(p, _)| p == path)
                .map_or(0, |(_, c)| *c);
            // The older count comes from the history file: any u64. Clamped, a
            // huge one is no growth rather than an overflow.
            let clamp = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
            Growth {
                path: path.clone(),
                delta: clamp(*count).saturating_sub(clamp(before)),
            }
        })
        .filter(|g| g.delta > 0)
        .max_by_key(|g| g.delta)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at: u64, total: u64) -> FdSample {
        FdSample {
            at,
            pid: 7,
            total,
            patterns: vec![],
            top: vec![("/h/state.db".into(), total / 2), ("/dev/null".into(), 3)],
        }
    }

    #[test]
    fn a_huge_count_in_the_file_is_no_growth_not_an_overflow() {
        let mut oldest = sample(1_800_000_000, 0);
        oldest.top = vec![("/a".into(), 1 << 63)];
        let mut current = sample(1_800_000_600, 0);
        current.top = vec![("/a".into(), 5)];
        assert_eq!(top_growing(&oldest, &current), None);
    }

    #[test]
    fn a_steady_leak_gives_its_rate_and_projection() {
        // 120 FDs an hour, sampled every 10 minutes, limit 1000.
        let history: Vec<FdSample> = (0..6).map(|i| sample(i * 600, 100 + 20 * i)).collect();
        let now = sample(3600, 220);
        let trend = compute(&history, &now, Duration::from_secs(6 * 3600), 1000).unwrap();
        assert_eq!(trend.samples, 7);
        assert!((trend.rate_per_hour - 120.0).abs() < 1e-6, "{trend:?}");
        assert_eq!(trend.projected_s, Some(6.5 * 3600.0).map(|s| s as u64));
        assert_eq!(
            trend.top_growing,
            Some(Growth {
                path: "/h/state.db".into(),
                delta: 60
            })
        );
        assert_eq!(
            trend.top_growing.unwrap().describe(),
            "growing most: /h/state.db (+60)"
        );
    }

    #[test]
    fn flat_or_shrinking_counts_project_nothing() {
        let history = vec![sample(0, 300), sample(600, 300)];
        let flat = compute(
            &history,
            &sample(1200, 300),
            Duration::from_secs(3600),
            1000,
        )
        .unwrap();
        assert_eq!(flat.projected_s, None);
        assert_eq!(flat.rate_per_hour, 0.0);
        let history = vec![sample(0, 500), sample(600, 400)];
        let down = compute(
            &history,
            &sample(1200, 300),
            Duration::from_secs(3600),
            1000,
        )
        .unwrap();
        assert!(down.rate_per_hour < 0.0);
        assert_eq!(down.projected_s, None);
        assert_eq!(down.top_growing, None);
    }

    #[test]
    fn needs_three_samples_of_this_process_inside_the_window() {
        let old = vec![sample(0, 100), sample(600, 110)];
        assert!(
            compute(
                &old,
                &sample(7200 + 700, 120),
                Duration::from_secs(7200),
                1000
            )
            .is_none()
        );
        let mut other = vec![sample(0, 100), sample(600, 110)];
        other[0].pid = 8;
        assert!(compute(&other, &sample(1200, 120), Duration::from_secs(7200), 1000).is_none());
        let same_instant = vec![sample(600, 100), sample(600, 110)];
        assert!(
            compute(
                &same_instant,
                &sample(600, 120),
                Duration::from_secs(7200),
                1000
            )
            .is_none()
        );
    }

    #[test]
    fn jitter_over_seconds_is_not_a_trend() {
        // 447/448 FDs over a few seconds: no trend at all.
        let history: Vec<FdSample> = (0..50).map(|i| sample(i, 447 + (i % 2))).collect();
        assert!(compute(&history, &sample(50, 448), Duration::from_secs(3600), 1000).is_none());
        // The same jitter over an hour: a trend, but flat.
        let history: Vec<FdSample> = (0..60).map(|i| sample(i * 60, 447 + (i % 2))).collect();
        let flat = compute(
            &history,
            &sample(3600, 448),
            Duration::from_secs(7200),
            1000,
        )
        .unwrap();
        assert_eq!(flat.projected_s, None, "{flat:?}");
    }

    #[test]
    fn at_the_limit_the_projection_is_now() {
        let history = vec![sample(0, 900), sample(600, 950)];
        let trend = compute(
            &history,
            &sample(1200, 1000),
            Duration::from_secs(3600),
            1000,
        )
        .unwrap();
        assert_eq!(trend.projected_s, Some(0));
    }

    #[test]
    fn noisy_samples_fit_within_a_few_percent() {
        // 60/h with ±5 FDs of jitter.
        let jitter = [3i64, -4, 5, -2, 0, 4, -5, 1, -1, 2];
        let history: Vec<FdSample> = (0..10u64)
            .map(|i| sample(i * 360, (200 + 6 * i as i64 + jitter[i as usize]) as u64))
            .collect();
        let now = sample(3600, 260);
        let trend = compute(&history, &now, Duration::from_secs(6 * 3600), 1000).unwrap();
        assert!((trend.rate_per_hour - 60.0).abs() < 6.0, "{trend:?}");
    }
}
